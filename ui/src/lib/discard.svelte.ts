// Esc in a form: the form closes at once when nothing in it was changed, and asks first (the
// discard dialog) when something was. What the form holds is compared with what it held when it
// opened, taken once its pickers have settled their values, so an untouched form is unchanged.

export class DiscardGuard {
  /** Whether the discard dialog is showing. */
  asking = $state(false);
  #read: () => unknown;
  #opened = "";

  /** `read` gives what the form holds now (its fields, as plain values). */
  constructor(read: () => unknown) {
    this.#read = read;
  }

  #now(): string {
    return JSON.stringify($state.snapshot(this.#read()));
  }

  /** Takes what the form holds now as its unchanged state: call when it has opened. */
  mark(): void {
    this.#opened = this.#now();
  }

  /** Whether anything was changed since the form opened. */
  changed(): boolean {
    return this.#now() !== this.#opened;
  }

  /** Esc: closes at once when nothing was changed, otherwise asks. */
  escape(close: () => void): void {
    if (this.changed()) this.asking = true;
    else close();
  }
}
