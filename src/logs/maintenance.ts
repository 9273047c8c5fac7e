/**
 * Compression and retention of day files. Ages are counted in days from the
 * newest day file of the container, that is from Docker's timestamps, never
 * from the logger's clock, so a wrong host clock cannot delete fresh files.
 *
 * Compression is crash-safe: the `.gz` is written under a temporary name,
 * fsynced and renamed, and only then is the original removed. A crash leaves
 * either the original alone, or the original and an identical `.gz`; the
 * next run removes the temporary file or the duplicate original.
 *
 * Maintenance runs while the follower writes. A day whose file the writer
 * has open is left alone, and this is checked again right before the rename
 * and each removal. A file that grew during its compression stays
 * uncompressed until the next run.
 *
 * @module
 */

const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.jsonl(\.gz)?$/;
const TEMPORARY_SUFFIX = ".tmp";

/** Options of {@linkcode maintainDayFiles}. */
export interface MaintenanceOptions {
  compression: "gzip" | "none";
  compressAfterDays: number;
  retentionDays: number;
  /**
   * Day (`YYYY-MM-DD`) ages are counted from. @default the newest day file's date
   */
  referenceDay?: string;
  /**
   * Days whose files are open for writing; they are left alone. Asked again
   * before each rename and removal, so a live view may be passed.
   */
  activeDays?: { has(day: string): boolean };
  /** Stops the run between files and between chunks of a compression. */
  signal?: AbortSignal;
}

/** Files that one maintenance run compressed, deleted or cleaned up. */
export interface MaintenanceResult {
  compressed: string[];
  deleted: string[];
  /** Leftovers of an interrupted earlier run that were cleaned up. */
  recovered: string[];
}

function dayNumber(day: string): number {
  return Date.parse(`${day}T00:00:00Z`) / 86_400_000;
}

/**
 * Compresses `source` into `target` and removes `source`. Returns false,
 * leaving `source` alone and no `target`, when `mayReplace` returns false or
 * the source grew while it was read.
 *
 * @throws the abort reason when `signal` aborts; the temporary file is removed
 */
async function gzipFile(
  source: string,
  target: string,
  mayReplace: () => boolean,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const temporary = target + TEMPORARY_SUFFIX;
  let bytesRead = 0;
  try {
    const input = await Deno.open(source, { read: true });
    using output = await Deno.open(temporary, {
      write: true,
      create: true,
      truncate: true,
      mode: 0o640,
    });
    const counted = input.readable.pipeThrough(
      new TransformStream<Uint8Array<ArrayBuffer>, Uint8Array<ArrayBuffer>>({
        transform(chunk, controller) {
          bytesRead += chunk.length;
          controller.enqueue(chunk);
        },
      }),
    );
    // The readable stream closes the input file when it ends or is cancelled.
    for await (
      const chunk of counted.pipeThrough(new CompressionStream("gzip"))
    ) {
      signal?.throwIfAborted();
      let offset = 0;
      while (offset < chunk.length) {
        offset += await output.write(chunk.subarray(offset));
      }
    }
    await output.sync();
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  // Synchronous from the check to the removal, so no write of this process
  // can open the file in between.
  if (!mayReplace() || Deno.statSync(source).size !== bytesRead) {
    Deno.removeSync(temporary);
    return false;
  }
  Deno.renameSync(temporary, target);
  Deno.removeSync(source);
  return true;
}

async function gunzipToText(path: string): Promise<string> {
  using file = await Deno.open(path, { read: true });
  return await new Response(
    file.readable.pipeThrough(new DecompressionStream("gzip")),
  ).text();
}

/**
 * Compresses and deletes day files of one directory. The newest day file
 * (the one being written) is never touched.
 */
export async function maintainDayFiles(
  dir: string,
  options: MaintenanceOptions,
): Promise<MaintenanceResult> {
  const result: MaintenanceResult = {
    compressed: [],
    deleted: [],
    recovered: [],
  };
  const plain = new Set<string>();
  const compressed = new Set<string>();
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile) continue;
      if (entry.name.endsWith(`.jsonl.gz${TEMPORARY_SUFFIX}`)) {
        // An interrupted compression: the original is still there.
        await Deno.remove(`${dir}/${entry.name}`);
        result.recovered.push(entry.name);
        continue;
      }
      const match = DAY_FILE.exec(entry.name);
      if (match === null) continue;
      (match[2] === undefined ? plain : compressed).add(match[1]!);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return result;
    throw error;
  }

  const days = [...new Set([...plain, ...compressed])].sort();
  const newest = days.at(-1);
  if (newest === undefined) return result;
  const reference = dayNumber(options.referenceDay ?? newest);

  const isActive = (day: string) => options.activeDays?.has(day) ?? false;
  for (const day of days) {
    options.signal?.throwIfAborted();
    if (day === newest || isActive(day)) continue;
    const age = reference - dayNumber(day);
    const plainPath = `${dir}/${day}.jsonl`;
    const gzPath = `${plainPath}.gz`;
    if (age > options.retentionDays) {
      for (
        const [present, path] of [[plain.has(day), plainPath], [
          compressed.has(day),
          gzPath,
        ]] as const
      ) {
        if (!present || isActive(day)) continue;
        Deno.removeSync(path);
        result.deleted.push(path);
      }
      continue;
    }
    if (plain.has(day) && compressed.has(day)) {
      // Either a crash between rename and remove (identical content), or
      // events for that day arrived after compression (kept uncompressed).
      if (
        await gunzipToText(gzPath) === await Deno.readTextFile(plainPath) &&
        !isActive(day)
      ) {
        Deno.removeSync(plainPath);
        result.recovered.push(plainPath);
      }
      continue;
    }
    if (
      options.compression === "gzip" && plain.has(day) &&
      age > options.compressAfterDays
    ) {
      const replaced = await gzipFile(
        plainPath,
        gzPath,
        () => !isActive(day),
        options.signal,
      );
      if (replaced) result.compressed.push(plainPath);
    }
  }
  return result;
}
