// Shared fixtures of the front-end tests: a few enumerations as the core would send them.
import type { EnumDef } from "./bindings/EnumDef";

/** A handful of enumerations, enough for the forms under test. */
export const enumFixture: EnumDef[] = [
  { name: "poverty_status", values: [{ code: "not_exited", national: "04", zh: "未脱贫", en: "Not yet exited" }] },
  { name: "household_attribute", values: [{ code: "general", national: null, zh: "一般贫困户", en: "General poor household" }] },
  { name: "monitoring_type", values: [{ code: "none", national: null, zh: "非监测对象", en: "Not monitored" }] },
  { name: "poverty_cause", values: [{ code: "illness", national: "01", zh: "因病", en: "Illness" }] },
];
