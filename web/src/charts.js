// Apache ECharts, with only the parts the dashboard uses (keeps the bundle smaller).
//
// Tooltips use renderMode 'richText' (drawn on the canvas): ECharts' HTML tooltips build
// markup with inline style attributes, which the page's Content-Security-Policy refuses.

import * as echarts from 'echarts/core';
import { BarChart, CustomChart, ScatterChart } from 'echarts/charts';
import { AriaComponent, DataZoomComponent, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent } from 'echarts/components';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([
  BarChart,
  CustomChart,
  ScatterChart,
  AriaComponent,
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  MarkLineComponent,
  TooltipComponent,
  CanvasRenderer,
]);

export { echarts };

export const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

/** Options every chart shares: system font, no animation (the data is what matters), text
 * tooltips on the canvas, and ECharts' generated description for screen readers. */
export function base() {
  return {
    animation: false,
    textStyle: { fontFamily: css('--font'), color: css('--fg') },
    aria: { enabled: true },
    tooltip: { renderMode: 'richText', confine: true },
  };
}

/** An ECharts instance on `el`, resized with the window. */
export function chart(el) {
  const c = echarts.init(el, null, { renderer: 'canvas' });
  window.addEventListener('resize', () => c.resize());
  // the instance, on its element (no global): lets a test read what the canvas drew
  el.gsomiaChart = c;
  return c;
}
