// Formatting of money and dates. Money arrives as integer fen and is shown as yuan; typed
// yuan are parsed to fen with string arithmetic, never through floating point.

/** Fen as yuan text, e.g. 123456 → "1,234.56". */
export function yuan(fen: number | null | undefined): string {
  if (fen === null || fen === undefined) return "—";
  const negative = fen < 0;
  const absolute = Math.abs(fen);
  const whole = Math.floor(absolute / 100).toLocaleString("en-US");
  const cents = String(absolute % 100).padStart(2, "0");
  return `${negative ? "-" : ""}${whole}.${cents}`;
}

/** Typed yuan ("12", "12.5", "12.50") as fen, or null when it is not an amount. */
export function parseYuan(text: string): number | null {
  const match = /^\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? "").padEnd(2, "0"));
}

/** Today as YYYY-MM-DD in local time. */
export function today(): string {
  const now = new Date();
  const pad = (value: number) => String(value).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/** Now as a local RFC 3339 date-time with offset, minutes precision. */
export function nowLocal(): string {
  const now = new Date();
  const pad = (value: number) => String(value).padStart(2, "0");
  const offset = -now.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  return `${today()}T${pad(now.getHours())}:${pad(now.getMinutes())}:00${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
}
