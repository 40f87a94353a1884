// Which screen is showing. Kept as plain state rather than URLs: the app has one window and no
// deep links, and the sync indicator stays mounted across every screen.

/** The screens of the app. */
export type Screen = "roster" | "household" | "training" | "visits" | "products" | "settings";

/** The current screen and, on the household page, which household. */
export const nav = $state<{ screen: Screen; householdId: string | null; editing: boolean }>({
  screen: "roster",
  householdId: null,
  editing: false,
});

/** Shows a screen. */
export function go(screen: Screen): void {
  nav.screen = screen;
  nav.editing = false;
}

/** Opens a household's page (or the new-household form when `id` is null). */
export function openHousehold(id: string | null, editing = false): void {
  nav.householdId = id;
  nav.editing = editing || id === null;
  nav.screen = "household";
}
