// The sync indicator's shared state: refreshed on a timer and after every save, so the pending
// count rises as the user edits offline.
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

/** Reads the status again (pending count, reachability, last sync). */
export async function refreshSync(): Promise<void> {
  try {
    syncState.status = await api.syncStatus();
  } catch {
    // The indicator keeps its last figures; a failing status read must not break a screen.
  }
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
    syncState.status = await api.syncNow();
    syncState.progress = 1;
    syncState.completed += 1;
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
