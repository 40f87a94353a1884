// Printing goes through the system's print dialog: the screen shows the document it prints (a
// sign-in sheet, a household card, a visit record) under <body>, where the print stylesheet in
// app.css prints it alone, on A4.
import { tick } from "svelte";

/** Opens the print dialog once the document chosen has been drawn. */
export async function printDocument(): Promise<void> {
  await tick();
  window.print();
}
