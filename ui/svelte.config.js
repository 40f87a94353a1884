import { vitePreprocess } from "@sveltejs/vite-plugin-svelte";

export default {
  preprocess: vitePreprocess(),
  compilerOptions: {
    // Forms listen for Escape to cancel (keyboard users expect it); the form element itself is
    // the right owner of that listener, so this accessibility hint does not apply.
    warningFilter: (warning) => warning.code !== "a11y_no_noninteractive_element_interactions",
  },
};
