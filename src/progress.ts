/**
 * One-line progress bar for the CLI. On a terminal it redraws the line in place with "\r"
 * at most about ten times a second. Elsewhere (a pipe, a CI log) it stays silent until done()
 * prints one summary line, so logs hold no partial lines or control codes.
 */

/** The part of a Node or Deno write stream that the bar uses. */
export interface ProgressStream {
  isTTY?: boolean;
  /** Terminal width in characters. Longer lines are cut to fit. */
  columns?: number;
  write(text: string): unknown;
}

export interface ProgressBar {
  /** Records the bytes done so far and, when known, the total. */
  update(loaded: number, total?: number): void;
  /** Draws the final state and ends the line. Later calls do nothing. */
  done(): void;
}

export interface ProgressBarOptions {
  /** Clock in milliseconds, replaceable in tests. Default performance.now(). */
  now?: () => number;
  /** Unit counted: bytes (default, shown in KiB/MiB) or a plain count such as "tokens". */
  unit?: string;
}

const REDRAW_INTERVAL_MS = 100;
const BAR_WIDTH = 20;
const ERASE_TO_END_OF_LINE = "\x1b[K";

/** Formats a byte count with a binary unit: B, KiB, MiB or GiB. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Creates a progress bar that writes to `stream`, starting each line with `label`. */
export function createProgressBar(stream: ProgressStream, label: string, options: ProgressBarOptions = {}): ProgressBar {
  const now = options.now ?? (() => performance.now());
  const unit = options.unit ?? "bytes";
  const format = unit === "bytes" ? formatBytes : (count: number): string => `${count} ${unit}`;
  const interactive = stream.isTTY === true;
  const startTime = now();
  let startLoaded: number | undefined;
  let loaded = 0;
  let total: number | undefined;
  let lastDraw = Number.NEGATIVE_INFINITY;
  let lastDrawnLoaded: number | undefined;
  let finished = false;

  // Speed counts only bytes moved since the first update, so a resumed download is not overstated.
  function bytesPerSecond(): number | undefined {
    const seconds = (now() - startTime) / 1000;
    // no rate from a single update: "2 tokens in 0.0 s, 0 tokens/s" read as a stall
    if (startLoaded === undefined || seconds <= 0 || loaded === startLoaded) return undefined;
    return (loaded - startLoaded) / seconds;
  }

  function describe(): string {
    const parts = [label];
    if (total !== undefined && total > 0) {
      const fraction = Math.min(loaded / total, 1);
      const filled = Math.round(fraction * BAR_WIDTH);
      parts.push(`[${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}]`);
      parts.push(`${Math.floor(fraction * 100).toString().padStart(3)}%`);
      parts.push(unit === "bytes" ? `${formatBytes(loaded)} / ${formatBytes(total)}` : `${loaded} / ${format(total)}`);
    } else {
      parts.push(format(loaded));
    }
    const speed = bytesPerSecond();
    if (speed !== undefined) parts.push(`${format(Math.round(speed))}/s`);
    return parts.join(" ");
  }

  function draw(): void {
    let line = describe();
    // Writing into the last column makes some terminals wrap, so keep one column free.
    if (stream.columns !== undefined && stream.columns > 1 && line.length >= stream.columns) line = line.slice(0, stream.columns - 1);
    stream.write(`\r${line}${ERASE_TO_END_OF_LINE}`);
    lastDraw = now();
    lastDrawnLoaded = loaded;
  }

  return {
    update(newLoaded: number, newTotal?: number): void {
      if (finished) return;
      startLoaded ??= newLoaded;
      loaded = newLoaded;
      if (newTotal !== undefined) total = newTotal;
      if (!interactive) return;
      // The first and the complete state are always drawn, whatever the interval.
      const complete = total !== undefined && loaded >= total && lastDrawnLoaded !== loaded;
      if (complete || now() - lastDraw >= REDRAW_INTERVAL_MS) draw();
    },
    done(): void {
      if (finished) return;
      finished = true;
      if (interactive) {
        draw();
        stream.write("\n");
        return;
      }
      const seconds = (now() - startTime) / 1000;
      const speed = bytesPerSecond();
      const rate = speed === undefined ? "" : `, ${format(Math.round(speed))}/s`;
      const duration = seconds < 0.1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`;
      stream.write(`${label}: ${format(loaded)} in ${duration}${rate}\n`);
    },
  };
}
