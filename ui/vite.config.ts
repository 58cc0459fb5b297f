/// <reference types="vitest/config" />
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";
import { defineConfig } from "vite";

// The build goes inside the Python package, which serves it at /ui (ADR 0022): committed, and
// `.ci/run` rebuilds it and fails when the committed files differ from the sources.
const outDir = fileURLToPath(new URL("../flowledger/http/dashboard/static", import.meta.url));
const api = process.env.FLOWLEDGER_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  base: "/ui/",
  plugins: [react(), tailwindcss()],
  build: {
    outDir,
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 700,
  },
  server: {
    // `npm run dev`: the app with hot reload on :5173, the API of `flowledger dev` behind it.
    proxy: { "/api": { target: api, changeOrigin: false }, "/health": api },
  },
  test: {
    environment: "jsdom",
    globals: true,
    setupFiles: ["./src/test/setup.ts"],
    css: false,
    restoreMocks: true,
  },
});
