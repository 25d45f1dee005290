// Vite builds the UI into the directory ui/build.sh names (--outDir). No
// inline scripts or styles are emitted (the CSP vesseld sends forbids them):
// modulepreload's polyfill is off because it would be inlined.
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

export default defineConfig({
  plugins: [vue()],
  base: '/',
  build: {
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: { '/jsonrpc': 'http://127.0.0.1:8080', '/import_raw_vdi': 'http://127.0.0.1:8080', '/rrd_updates': 'http://127.0.0.1:8080', '/console': { target: 'ws://127.0.0.1:8080', ws: true } },
  },
})
