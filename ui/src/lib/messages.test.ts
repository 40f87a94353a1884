import { describe, expect, it } from "vitest";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { dictionaries, zhCN } from "./messages";

// Every key used by a `t("...")` call anywhere in the source.
function usedKeys(directory: string): Set<string> {
  const keys = new Set<string>();
  for (const name of readdirSync(directory)) {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) {
      if (name !== "bindings") for (const key of usedKeys(path)) keys.add(key);
    } else if (/\.(svelte|ts)$/.test(name) && !name.endsWith(".test.ts")) {
      for (const match of readFileSync(path, "utf8").matchAll(/\bt\("([a-z_]+\.[a-z_]+)"/g)) keys.add(match[1]);
      for (const match of readFileSync(path, "utf8").matchAll(/key: "([a-z_]+\.[a-z_]+)"/g)) keys.add(match[1]);
    }
  }
  return keys;
}

describe("dictionaries", () => {
  it("have the same keys in Chinese and English, none empty", () => {
    const chinese = Object.keys(zhCN).sort();
    for (const [language, dictionary] of Object.entries(dictionaries)) {
      expect(Object.keys(dictionary).sort(), language).toEqual(chinese);
      for (const [key, text] of Object.entries(dictionary)) expect(text.trim(), `${language} ${key}`).not.toBe("");
    }
  });

  it("contain every key the interface uses", () => {
    const missing = [...usedKeys(join(__dirname, ".."))].filter((key) => !(key in zhCN));
    expect(missing).toEqual([]);
  });

  it("use ASCII punctuation in English", () => {
    const wide = Object.entries(dictionaries.en).filter(([, text]) => /[^\x00-\x7f]/.test(text));
    expect(wide).toEqual([]);
  });

  it("write Chinese in the Chinese dictionary", () => {
    expect(zhCN["nav.roster"]).toMatch(/[\u4e00-\u9fff]/);
  });
});
