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

/** A typed date tidied into YYYY-MM-DD: `2001/5/4`, `2001.05.04`, `2001年5月4日` or `20010504`
 * become `2001-05-04`; other text is returned trimmed, for the core to judge. */
export function tidyDate(text: string): string {
  const trimmed = text.trim();
  const digits = /^(\d{4})(\d{2})(\d{2})$/.exec(trimmed);
  if (digits) return `${digits[1]}-${digits[2]}-${digits[3]}`;
  const parts = /^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$/.exec(trimmed);
  if (parts) return `${parts[1]}-${parts[2].padStart(2, "0")}-${parts[3].padStart(2, "0")}`;
  return trimmed;
}

/** A typed time of day tidied into HH:MM (`9:5` → `09:05`, `0930` → `09:30`); other text trimmed. */
export function tidyTime(text: string): string {
  const trimmed = text.trim();
  const digits = /^(\d{2})(\d{2})$/.exec(trimmed);
  if (digits) return `${digits[1]}:${digits[2]}`;
  const parts = /^(\d{1,2})\s*[:：点]\s*(\d{1,2})\s*分?$/.exec(trimmed);
  if (parts) return `${parts[1].padStart(2, "0")}:${parts[2].padStart(2, "0")}`;
  return trimmed;
}

/** A typed whole number within `min..=max`: the number, null when nothing was typed, or
 * undefined when the text is not such a number (85.5, 八十, 120). */
export function wholeNumber(text: string, min: number, max: number): number | null | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  if (!/^\d{1,9}$/.test(trimmed)) return undefined;
  const value = Number(trimmed);
  return value >= min && value <= max ? value : undefined;
}

/** An identity card number as lists and views show it: 5307**********0018 (first and last four). */
export function maskIdCard(number: string | null | undefined): string {
  const text = (number ?? "").trim();
  if (text.length < 9) return "*".repeat(text.length);
  return `${text.slice(0, 4)}${"*".repeat(text.length - 8)}${text.slice(-4)}`;
}
