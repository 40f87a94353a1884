// The sync indicator's shared state: refreshed on a timer and after every save, so the pending
// count rises as the user edits offline, and from the events of the syncs the app makes by
// itself. Answers can arrive out of order (a slow status read started before a fast one); only
// the newest is shown, so a stale "online" never overwrites a fresh "offline".
import { api, type IpcError } from "./ipc";
import type { SyncStatus } from "./bindings/SyncStatus";

/** What the indicator shows. */
export const syncState = $state<{
  status: SyncStatus | null;
  syncing: boolean;
  progress: number;
  error: IpcError | null;
  /** Moves whenever data arrives from outside the screen's own edits (a finished sync, demo data); screens showing such data reload. */
  completed: number;
}>({ status: null, syncing: false, progress: 0, error: null, completed: 0 });

// Each status read (and each event) takes a number; an answer older than the one shown is dropped.
let asked = 0;
let shown = 0;

/** Shows a status read under `ticket`, unless a newer one is shown already; a sync that finished
 * since the last one shown makes the screens showing synced data reload. */
function show(status: SyncStatus, ticket: number): void {
  if (ticket < shown) return;
  shown = ticket;
  const before = syncState.status?.last_sync_at;
  syncState.status = status;
  if (before !== undefined && status.last_sync_at && status.last_sync_at !== before) {
    syncState.completed += 1;
    // A sync has finished since: the last one's failure is no longer news.
    syncState.error = null;
  }
}

/** Reads the status again (pending count, reachability, last sync). */
export async function refreshSync(): Promise<void> {
  const ticket = ++asked;
  try {
    show(await api.syncStatus(), ticket);
  } catch {
    // The indicator keeps its last figures; a failing status read must not break a screen.
  }
}

/** Follows the syncs the app makes by itself: their progress and, after each, the new status.
 * Returns a function that stops following them. */
export async function followSync(): Promise<() => void> {
  const stops = await Promise.all([
    api.onSyncProgress((progress) => {
      const ended = progress.phase === "done" || progress.phase === "failed";
      syncState.syncing = !ended;
      syncState.progress = ended ? (progress.phase === "done" ? 1 : 0) : progress.total > 0 ? Math.min(1, progress.done / progress.total) : 0;
      if (ended) setTimeout(() => { if (!syncState.syncing) syncState.progress = 0; }, 1500);
    }),
    api.onSyncStatus((status) => {
      syncState.syncing = status.syncing;
      show(status, ++asked);
    }),
  ]);
  return () => stops.forEach((stop) => stop());
}

/** Runs a sync, following its progress events. */
export async function runSync(): Promise<void> {
  // One sync at a time: a click while the opening sync runs waits for that one's figures.
  if (syncState.syncing) return;
  syncState.syncing = true;
  syncState.progress = 0;
  syncState.error = null;
  const unlisten = await api.onSyncProgress((progress) => {
    syncState.progress = progress.total > 0 ? Math.min(1, progress.done / progress.total) : progress.phase === "done" ? 1 : 0;
  });
  try {
    const status = await api.syncNow();
    syncState.progress = 1;
    const before = syncState.status?.last_sync_at;
    show(status, ++asked);
    // The screens reload after every sync the user asked for, even one that brought nothing.
    if (before === undefined || before === status.last_sync_at) syncState.completed += 1;
  } catch (error) {
    syncState.error = error as IpcError;
  } finally {
    unlisten();
    syncState.syncing = false;
    await refreshSync();
    // The full bar stays a moment to show the sync ended, then the bar goes until the next one.
    setTimeout(() => {
      if (!syncState.syncing) syncState.progress = 0;
    }, 1500);
  }
}
