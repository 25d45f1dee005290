declare module '*.vue' {
  import type { DefineComponent } from 'vue'
  const component: DefineComponent<object, object, unknown>
  export default component
}
declare module '*.css'
declare module 'uplot/dist/uPlot.min.css'
declare module '@xterm/xterm/css/xterm.css'
