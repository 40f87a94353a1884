// How records and their sync state are named on screen: a record kind's and a field's label,
// a state's and a rejection reason's text, and a synced value shown the way the forms show it.
import { t } from "./i18n.svelte";
import { yuan } from "./format";
import type { MessageKey } from "./messages";

const recordKinds: Record<string, MessageKey> = {
  households: "record.households",
  members: "record.members",
  income_records: "record.income_records",
  visits: "record.visits",
  listings: "record.listings",
  products: "record.products",
  villages: "record.villages",
  training_sessions: "record.training_sessions",
  attendance: "record.attendance",
  skill_assessments: "record.skill_assessments",
  photos: "record.photos",
};

// The form labels fields already have, by table and field; a field without one shows its name.
const fieldLabels: Record<string, MessageKey> = {
  "households.head_name": "household.head_name",
  "households.phone": "household.phone",
  "households.village_id": "household.village",
  "households.register_no": "household.register_no",
  "households.group_name": "household.group",
  "households.attribute": "household.attribute",
  "households.poverty_status": "household.poverty_status",
  "households.monitoring_type": "household.monitoring_type",
  "households.main_cause": "household.main_cause",
  "households.notes": "household.notes",
  "members.name": "member.name",
  "members.sex": "member.sex",
  "members.birth_date": "member.birth_date",
  "members.relation": "member.relation",
  "members.education": "member.education",
  "members.health": "member.health",
  "members.labour_capacity": "member.labour_capacity",
  "members.migrant_work": "member.migrant_work",
  "members.phone": "member.phone",
  "members.has_smartphone": "member.has_smartphone",
  "members.ecommerce_role": "member.ecommerce_role",
  "income_records.amount_fen": "income.amount",
  "income_records.year": "income.year",
  "income_records.category": "income.category",
  "visits.summary": "visit.summary",
  "visits.actions_agreed": "visit.actions",
  "visits.next_visit_date": "visit.next",
  "listings.title": "products.listing_title",
  "listings.price_fen": "products.price",
  "listings.status": "products.status",
};

const stateKeys: Record<string, MessageKey> = {
  synced: "sync.state_synced",
  pending: "sync.state_pending",
  sent: "sync.state_sent",
  accepted: "sync.state_accepted",
  superseded: "sync.state_superseded",
  rejected: "sync.state_rejected",
};

const reasonKeys: Record<string, MessageKey> = {
  stale_base: "sync.reason_stale_base",
  server_only: "sync.reason_server_only",
  forbidden: "sync.reason_forbidden",
  invalid: "sync.reason_invalid",
  invalid_record: "sync.reason_invalid_record",
};

/** The label of a record kind (a synced table). */
export function recordKind(table: string): string {
  const key = recordKinds[table];
  return key ? t(key) : table;
}

/** The label of a field of a synced table. */
export function fieldLabel(table: string, field: string): string {
  const key = fieldLabels[`${table}.${field}`];
  return key ? t(key) : field;
}

/** The text of a sync state. */
export function stateText(state: string): string {
  const key = stateKeys[state];
  return key ? t(key) : state;
}

/** The text of a rejection reason. */
export function reasonText(reason: string | null | undefined): string {
  if (!reason) return "";
  const key = reasonKeys[reason];
  return key ? t(key) : reason;
}

/** A synced value (JSON text) as a person reads it: money in yuan, text without quotes. */
export function showValue(field: string, json: string | null | undefined): string {
  if (json === null || json === undefined || json === "null") return "—";
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return json;
  }
  if (field.endsWith("_fen") && typeof value === "number") return `¥${yuan(value)}`;
  if (typeof value === "boolean") return value ? t("common.yes") : t("common.no");
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A value the user typed, turned into what the field stores (yuan to fen for money). */
export function parseTyped(field: string, text: string, previousJson: string | null): unknown {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  if (field.endsWith("_fen")) {
    const match = /^(\d{1,9})(?:\.(\d{1,2}))?$/.exec(trimmed);
    return match ? Number(match[1]) * 100 + Number((match[2] ?? "").padEnd(2, "0")) : trimmed;
  }
  let previous: unknown = null;
  try {
    previous = previousJson ? JSON.parse(previousJson) : null;
  } catch {
    previous = null;
  }
  if (typeof previous === "number" && /^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  if (typeof previous === "boolean") return trimmed === "true" || trimmed === t("common.yes");
  return trimmed;
}

/** The text a fix form starts from: the rejected value as the user typed it. */
export function editableValue(field: string, json: string | null | undefined): string {
  if (json === null || json === undefined || json === "null") return "";
  try {
    const value = JSON.parse(json);
    if (field.endsWith("_fen") && typeof value === "number") return yuan(value).replaceAll(",", "");
    return typeof value === "string" ? value : String(value);
  } catch {
    return json;
  }
}
