// Whether the window is locked, and after how long idle it locks; shared by the frame (which
// watches for idle) and the settings screen (which changes the time or locks at once).
import { api } from "./ipc";

export const lockState = $state({ afterSeconds: 15 * 60, locked: false, lastActivity: Date.now() });

/** Notes the user's activity, pushing the lock back. */
export function touched() {
  lockState.lastActivity = Date.now();
}

/** Locks the window now; the store stays open and sync goes on. */
export async function lockNow() {
  lockState.locked = true;
  await api.lock().catch(() => {});
}

/** Locks the window if it sat idle for the configured time. */
export async function lockIfIdle(now = Date.now()) {
  if (!lockState.locked && now - lockState.lastActivity >= lockState.afterSeconds * 1000) await lockNow();
}
