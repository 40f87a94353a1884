// The labels of coded values, loaded once from the core (reference::enum_labels). The interface
// never repeats them: a picker's options and a code's label both come from here.
import { api } from "./ipc";
import { locale } from "./i18n.svelte";
import type { EnumDef } from "./bindings/EnumDef";

const store = $state<{ enums: Record<string, EnumDef> }>({ enums: {} });

/** Loads every enumeration's labels. */
export async function loadLabels(): Promise<void> {
  const enums = await api.enumLabels();
  store.enums = Object.fromEntries(enums.map((definition) => [definition.name, definition]));
}

/** The label of `code` in enumeration `name`, in the current language (the code if unknown). */
export function label(name: string, code: string | null | undefined): string {
  if (!code) return "";
  const value = store.enums[name]?.values.find((candidate) => candidate.code === code);
  if (!value) return code;
  return locale.language === "en" ? value.en : value.zh;
}

/** The options of enumeration `name`, in display order, labelled in the current language. */
export function options(name: string): { code: string; label: string }[] {
  return (store.enums[name]?.values ?? []).map((value) => ({
    code: value.code,
    label: locale.language === "en" ? value.en : value.zh,
  }));
}
