// The save of a form, shared by every form: one save at a time (a second Enter or click while
// the first is under way does nothing, so a record is never made twice), and the core's refusal
// kept so each field's message shows beside it in the current language.
import { locale } from "./i18n.svelte";
import type { IpcError } from "./ipc";

export class FormSave {
  /** The core's last refusal; cleared by a save that succeeds. */
  error = $state<IpcError | null>(null);
  /** Whether a save is under way. */
  saving = $state(false);
  /** The message for each refused field, in the current language. */
  fieldErrors = $derived(this.error?.fieldMessages(locale.language) ?? {});

  /** Runs `save` unless one is under way, then hands the saved record to `onSaved`. */
  async run<T>(save: () => Promise<T>, onSaved: (saved: T) => void): Promise<void> {
    if (this.saving) return;
    this.saving = true;
    try {
      const saved = await save();
      this.error = null;
      onSaved(saved);
    } catch (failure) {
      this.error = failure as IpcError;
    } finally {
      this.saving = false;
    }
  }
}
