// The lines a delete confirmation shows: the record by the name the user knows it by, then what
// goes with it, then what stays (income is never deleted), in the current language.
import { t } from "./i18n.svelte";
import type { DeletionImpact } from "./bindings/DeletionImpact";

/** The kinds of record a confirmation can name. */
export type DeletedKind = "household" | "member" | "session";

/** What goes when a record of `kind` is deleted, one line each, and the note on what stays. */
export function impactLines(kind: DeletedKind, impact: DeletionImpact): { lines: string[]; note: string } {
  const lines = [t(`confirm.${kind}`, { name: impact.name })];
  if (kind === "household" && impact.members > 0) lines.push(t("confirm.members", { count: impact.members }));
  if (impact.visits > 0) lines.push(t("confirm.visits", { count: impact.visits }));
  if (impact.attendance > 0) lines.push(t("confirm.attendance", { count: impact.attendance }));
  if (impact.assessments > 0) lines.push(t("confirm.assessments", { count: impact.assessments }));
  const kept = impact.income_records_kept > 0 ? `${t("confirm.income_kept", { count: impact.income_records_kept })} ` : "";
  return { lines, note: `${kept}${t("confirm.synced")}` };
}
