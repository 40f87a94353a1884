// Shared fixtures of the front-end tests: a few enumerations as the core would send them.
import type { EnumDef } from "./bindings/EnumDef";

/** A handful of enumerations, enough for the forms under test. */
export const enumFixture: EnumDef[] = [
  { name: "poverty_status", values: [{ code: "not_exited", national: "04", zh: "未脱贫", en: "Not yet exited" }] },
  { name: "household_attribute", values: [{ code: "general", national: null, zh: "一般贫困户", en: "General poor household" }] },
  { name: "monitoring_type", values: [{ code: "none", national: null, zh: "非监测对象", en: "Not monitored" }] },
  { name: "poverty_cause", values: [{ code: "illness", national: "01", zh: "因病", en: "Illness" }] },
  { name: "relation_to_head", values: [{ code: "head", national: "01", zh: "户主", en: "Head" }, { code: "son", national: "03", zh: "之子", en: "Son" }] },
  { name: "sex", values: [{ code: "male", national: "1", zh: "男", en: "Male" }, { code: "female", national: "2", zh: "女", en: "Female" }] },
  { name: "health", values: [{ code: "healthy", national: "01", zh: "健康", en: "Healthy" }] },
  { name: "income_category", values: [{ code: "wage", national: null, zh: "工资性收入", en: "Wage income" }, { code: "operating", national: null, zh: "生产经营性收入", en: "Operating income" }] },
  { name: "income_subcategory", values: [{ code: "crop", national: "01", zh: "种植业", en: "Crops" }] },
  { name: "income_source", values: [{ code: "self_report", national: null, zh: "自报", en: "Self-reported" }] },
];
