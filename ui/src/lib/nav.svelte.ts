// Which screen is showing. Kept as plain state rather than URLs: the app has one window and no
// deep links, and the sync indicator stays mounted across every screen.

/** The screens of the app. */
export type Screen = "roster" | "household" | "training" | "visits" | "products" | "outcomes" | "settings";

/** A rejected edit being fixed in its record's own form: which conflict, record and field, and
 * the rejected value (JSON text) the form starts from. */
export type FixRequest = { conflictId: number; table: string; rowId: string; field: string; value: string };

/** The current screen and, on the household page, which household (and a rejected edit to fix). */
export const nav = $state<{ screen: Screen; householdId: string | null; editing: boolean; fix: FixRequest | null }>({
  screen: "roster",
  householdId: null,
  editing: false,
  fix: null,
});

/** Shows a screen. */
export function go(screen: Screen): void {
  nav.screen = screen;
  nav.editing = false;
  nav.fix = null;
}

/** Opens a household's page (or the new-household form when `id` is null). */
export function openHousehold(id: string | null, editing = false): void {
  nav.householdId = id;
  nav.editing = editing || id === null;
  nav.fix = null;
  nav.screen = "household";
}

/** Opens the form of the record a rejected edit belongs to, starting from the rejected value. */
export function fixOnHouseholdPage(householdId: string, fix: FixRequest): void {
  nav.householdId = householdId;
  nav.editing = false;
  nav.fix = fix;
  nav.screen = "household";
}
