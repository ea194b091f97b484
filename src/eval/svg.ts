/**
 * Line charts as standalone SVG strings, with no dependencies: axes with rounded ticks, linear
 * or log scales, one `<path class="series">` per series and a legend. The same string works as
 * an .svg file and inline in HTML. Styling is in attributes, not CSS, so any viewer renders it.
 */

export interface ChartSeries {
  name: string;
  /** [x, y] points in drawing order. On a log axis, points with a value ≤ 0 are left out. */
  points: Array<[number, number]>;
  dashed?: boolean;
  /** Draws a dot at every point. */
  markers?: boolean;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  xScale?: "linear" | "log";
  yScale?: "linear" | "log";
  /** Axis ranges; default: the data's, widened to the outer ticks. */
  xDomain?: [number, number];
  yDomain?: [number, number];
  /** Tick values of the x axis, for example layer numbers; default: rounded steps. */
  xTicks?: number[];
  /** Identifier written as the chart's data-chart attribute and used for element ids. */
  id?: string;
  width?: number;
  height?: number;
}

/** Okabe–Ito colours, distinguishable with the common colour-vision deficiencies. */
const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"];
const DASHES = ["", "6 4", "2 3"];
const MARGIN = { left: 68, right: 168, top: 40, bottom: 52 };
const TICK_TARGET = 6;

/** Escapes text for XML content and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[char]!);
}

/** Formats a tick value briefly: 0.25, 1200, 1e-4. */
export function formatTick(value: number): string {
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e5 || magnitude < 1e-3) {
    const exponent = Math.floor(Math.log10(magnitude) + 1e-9);
    const mantissa = Number((value / 10 ** exponent).toPrecision(3));
    return mantissa === 1 ? `1e${exponent}` : `${mantissa}e${exponent}`;
  }
  return String(Number(value.toPrecision(6)));
}

/** Returns a step of 1, 2 or 5 times a power of ten near span / TICK_TARGET. */
function niceStep(span: number): number {
  const raw = span / TICK_TARGET;
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  if (fraction < 1.5) return power;
  if (fraction < 3.5) return 2 * power;
  if (fraction < 7.5) return 5 * power;
  return 10 * power;
}

/** Returns a domain widened to whole steps and the ticks inside it, on a linear axis. */
function linearAxis(min: number, max: number, fixed?: [number, number]): { domain: [number, number]; ticks: number[] } {
  if (fixed) {
    min = fixed[0];
    max = fixed[1];
  }
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad;
    max += pad;
  }
  const step = niceStep(max - min);
  const low = fixed ? min : Math.floor(min / step) * step;
  const high = fixed ? max : Math.ceil(max / step) * step;
  const ticks: number[] = [];
  for (let tick = Math.ceil(low / step - 1e-9) * step; tick <= high + step * 1e-9; tick += step) ticks.push(Number(tick.toPrecision(12)));
  return { domain: [low, high], ticks };
}

/** Returns a domain of whole decades and ticks at 1 (and 2, 5 over short ranges) times powers of ten. */
function logAxis(min: number, max: number, fixed?: [number, number]): { domain: [number, number]; ticks: number[] } {
  const low = fixed ? fixed[0] : 10 ** Math.floor(Math.log10(min));
  const high = fixed ? fixed[1] : 10 ** Math.ceil(Math.log10(max) - 1e-12);
  const top = high > low ? high : low * 10;
  const decades = Math.log10(top / low);
  const multiples = decades <= 2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let power = Math.floor(Math.log10(low)); power <= Math.ceil(Math.log10(top)); power++) {
    for (const multiple of multiples) {
      const tick = Number((multiple * 10 ** power).toPrecision(12));
      if (tick >= low * (1 - 1e-9) && tick <= top * (1 + 1e-9)) ticks.push(tick);
    }
  }
  return { domain: [low, top], ticks };
}

/** Builds one axis (domain, ticks, value-to-pixel map) from the values drawn on it. */
function buildAxis(values: number[], scale: "linear" | "log", from: number, to: number, fixed?: [number, number], fixedTicks?: number[]) {
  const finite = values.filter((value) => Number.isFinite(value) && (scale === "linear" || value > 0));
  // An axis without data spans [0, 1], or [1, 10] on a log scale.
  let min = scale === "log" ? 1 : 0;
  let max = scale === "log" ? 10 : 1;
  if (finite.length > 0) {
    min = Math.min(...finite);
    max = Math.max(...finite);
  }
  const axis = scale === "log" ? logAxis(min, max, fixed) : linearAxis(min, max, fixed);
  const ticks = fixedTicks ?? axis.ticks;
  const [low, high] = axis.domain;
  const project = scale === "log"
    ? (value: number) => from + ((Math.log10(value) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))) * (to - from)
    : (value: number) => from + ((value - low) / (high - low)) * (to - from);
  return { ticks, project };
}

function round(value: number): string {
  return value.toFixed(1);
}

/** Renders a line chart as a standalone SVG document string. */
export function renderChart(options: ChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 380;
  const xScale = options.xScale ?? "linear";
  const yScale = options.yScale ?? "linear";
  const id = options.id ?? "chart";
  const plot = { left: MARGIN.left, right: width - MARGIN.right, top: MARGIN.top, bottom: height - MARGIN.bottom };
  const usable = options.series.map((series) => ({
    ...series,
    points: series.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (xScale === "linear" || x > 0) && (yScale === "linear" || y > 0)),
  }));
  const x = buildAxis(usable.flatMap((series) => series.points.map((point) => point[0])), xScale, plot.left, plot.right, options.xDomain, options.xTicks);
  const y = buildAxis(usable.flatMap((series) => series.points.map((point) => point[1])), yScale, plot.bottom, plot.top, options.yDomain);

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ` +
    `font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12" data-chart="${escapeXml(id)}" role="img" aria-labelledby="${escapeXml(id)}-title">`,
    `<title id="${escapeXml(id)}-title">${escapeXml(options.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${plot.left}" y="22" font-size="14" font-weight="600" fill="#111111">${escapeXml(options.title)}</text>`,
  );

  // grid and ticks
  for (const tick of y.ticks) {
    const py = round(y.project(tick));
    parts.push(`<line x1="${plot.left}" x2="${plot.right}" y1="${py}" y2="${py}" stroke="#e3e3e3"/>`);
    parts.push(`<text x="${plot.left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle" fill="#444444">${formatTick(tick)}</text>`);
  }
  for (const tick of x.ticks) {
    const px = round(x.project(tick));
    parts.push(`<line x1="${px}" x2="${px}" y1="${plot.top}" y2="${plot.bottom}" stroke="#f0f0f0"/>`);
    parts.push(`<text x="${px}" y="${plot.bottom + 16}" text-anchor="middle" fill="#444444">${formatTick(tick)}</text>`);
  }
  parts.push(`<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="none" stroke="#888888"/>`);
  parts.push(`<text x="${(plot.left + plot.right) / 2}" y="${height - 12}" text-anchor="middle" fill="#222222">${escapeXml(options.xLabel)}</text>`);
  parts.push(
    `<text x="16" y="${(plot.top + plot.bottom) / 2}" text-anchor="middle" fill="#222222" ` +
    `transform="rotate(-90 16 ${(plot.top + plot.bottom) / 2})">${escapeXml(options.yLabel)}</text>`,
  );

  // series, then the legend to the right of the plot
  usable.forEach((series, i) => {
    const color = PALETTE[i % PALETTE.length];
    const dash = series.dashed ? "6 4" : DASHES[Math.floor(i / PALETTE.length) % DASHES.length];
    const dashAttribute = dash ? ` stroke-dasharray="${dash}"` : "";
    const d = series.points.map(([px, py], k) => `${k === 0 ? "M" : "L"}${round(x.project(px))} ${round(y.project(py))}`).join(" ");
    parts.push(
      `<path class="series" data-series="${escapeXml(series.name)}" d="${d}" fill="none" stroke="${color}" ` +
      `stroke-width="2" stroke-linejoin="round"${dashAttribute}/>`,
    );
    if (series.markers) {
      for (const [px, py] of series.points) {
        parts.push(`<circle cx="${round(x.project(px))}" cy="${round(y.project(py))}" r="3" fill="${color}"/>`);
      }
    }
    const ly = plot.top + 8 + i * 18;
    parts.push(`<line x1="${plot.right + 14}" x2="${plot.right + 38}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${dashAttribute}/>`);
    parts.push(`<text x="${plot.right + 44}" y="${ly}" dominant-baseline="middle" fill="#222222">${escapeXml(series.name)}</text>`);
  });
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
