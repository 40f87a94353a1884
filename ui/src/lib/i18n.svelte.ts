// The interface language: a reactive value every text reads, so a switch takes effect at once.
// It is kept in the app's settings (so it persists across starts) through the IPC client.
import { api } from "./ipc";
import { dictionaries, type MessageKey } from "./messages";

/** The current language, `zh-CN` (default) or `en`. */
export const locale = $state({ language: "zh-CN" });

/** The text of `key` in the current language, with `{name}` placeholders filled in. */
export function t(key: MessageKey, values: Record<string, string | number> = {}): string {
  const dictionary = dictionaries[locale.language] ?? dictionaries["zh-CN"];
  let text = dictionary[key] ?? key;
  for (const [name, value] of Object.entries(values)) text = text.replaceAll(`{${name}}`, String(value));
  return text;
}

/** Switches the language now and saves it for the next start. */
export async function setLanguage(language: string): Promise<void> {
  locale.language = language;
  document.documentElement.lang = language;
  await api.setLanguage(language);
}

/** `text` in brackets, full-width in Chinese and ASCII in English. */
export function paren(text: string): string {
  return locale.language === "en" ? ` (${text})` : `（${text}）`;
}

/** The colon after a label: full-width in Chinese, ASCII in English. */
export function colon(): string {
  return locale.language === "en" ? ": " : "：";
}
