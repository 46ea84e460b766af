import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` serves the page on :5173 and passes /api to the Python server on :8000.
export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/api": "http://127.0.0.1:8000" } },
  build: { chunkSizeWarningLimit: 1500 }, // one bundle for a one-page example
});
