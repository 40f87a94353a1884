// Keyboard behaviour shared by the forms: Enter saves from any field but a text area or a
// button (a browser submits on Enter only from a text box, not from a picker or a tick box),
// and Esc cancels.

/** A form's keydown handler that saves on Enter and calls `onCancel` on Escape. */
export function formKeys(onCancel: () => void): (event: KeyboardEvent) => void {
  return (event: KeyboardEvent) => {
    const target = event.target as HTMLElement | null;
    if (event.key === "Escape") {
      event.preventDefault();
      onCancel();
      return;
    }
    if (event.key !== "Enter" || event.isComposing || !target) return;
    const tag = target.tagName;
    const type = (target as HTMLInputElement).type;
    if (tag === "SELECT" || (tag === "INPUT" && (type === "checkbox" || type === "radio"))) {
      event.preventDefault();
      (target as HTMLInputElement).form?.requestSubmit();
    }
  };
}

/** Trimmed text, or null when empty. */
export function clean(value: string | null | undefined): string | null {
  const text = (value ?? "").trim();
  return text === "" ? null : text;
}

/**
 * A form's submit handler that runs one save at a time: a second Enter or click while the first
 * save is under way does nothing, so a record is never made twice. The browser's own submit is
 * always prevented.
 */
export function oneAtATime<E extends Event>(handler: (event: E) => Promise<void>): (event: E) => Promise<void> {
  let running = false;
  return async (event: E) => {
    event.preventDefault();
    if (running) return;
    running = true;
    try {
      await handler(event);
    } finally {
      running = false;
    }
  };
}
