/**
 * The `run` command: one log follower and one scraper per container, until
 * SIGTERM or SIGINT, then everything held is written and the database closed.
 *
 * @module
 */
import { AlertEngine } from "../alerts/evaluator.ts";
import { loadRules } from "../alerts/rules.ts";
import type { LoggerConfig } from "../config/config.ts";
import { errorMessage, type Logger } from "../log.ts";
import { LogFollower } from "../logs/follower.ts";
import { Scraper } from "../metrics/scraper.ts";
import { type MetricsStore, openStore } from "../metrics/store.ts";

/** Time between runs of metrics retention after the one at start. */
const RETENTION_INTERVAL_MS = 3_600_000;

async function deleteExpiredSamples(
  store: MetricsStore,
  retentionDays: number,
  logger: Logger,
): Promise<void> {
  try {
    const deleted = await store.deleteBefore(
      Date.now() - retentionDays * 86_400_000,
    );
    if (deleted > 0) {
      logger.info("Deleted samples past retention", {
        samples: deleted,
        retention_days: retentionDays,
      });
    }
  } catch (error) {
    logger.warn("Metrics retention failed; retrying in an hour", {
      err: errorMessage(error),
    });
  }
}

/** Options of {@linkcode runDaemon}. */
export interface RunOptions {
  logger: Logger;
  /** Stops the daemon when aborted; the command wires SIGTERM and SIGINT to it. */
  signal: AbortSignal;
}

/** Runs followers and scrapers until `signal` aborts, then shuts them down cleanly. */
export async function runDaemon(
  config: LoggerConfig,
  options: RunOptions,
): Promise<void> {
  const { logger, signal } = options;
  // An invalid rules file stops start-up before anything is written.
  const rules = config.alertsFile === null
    ? null
    : await loadRules(config.alertsFile);
  let store: MetricsStore | null = null;
  if (config.dbPath !== null) store = openStore(config.dbPath);
  const alerts = rules === null || store === null || config.outputDir === null
    ? null
    : AlertEngine.open({
      rules,
      store,
      logger,
      alertLogPath: `${config.outputDir}/alerts.log`,
    });

  const followers: LogFollower[] = [];
  const scrapers: Scraper[] = [];
  for (const container of config.containers) {
    if (container.logDir !== null) {
      followers.push(
        new LogFollower({
          container: container.name,
          command: container.logsCommand,
          logDir: container.logDir,
          logger,
          maintenance: {
            compression: config.compression,
            compressAfterDays: config.compressAfterDays,
            retentionDays: config.retentionDays,
          },
        }),
      );
    }
    if (container.metricsEndpoint !== null && store !== null) {
      scrapers.push(
        new Scraper({
          container: container.name,
          url: container.metricsEndpoint,
          intervalMs: config.intervalMs,
          timeoutMs: config.timeoutMs,
          store,
          logger,
          onStored: (id, health, samples) =>
            alerts?.onScrape(id, health, samples),
        }),
      );
    }
  }

  logger.info("Logger started", {
    containers: config.containers.map((c) => c.name).join(","),
    db: config.dbPath,
    interval_seconds: config.intervalMs / 1000,
  });
  for (const follower of followers) await follower.start();
  for (const scraper of scrapers) scraper.start();
  let retention: Promise<void> = Promise.resolve();
  const retentionTimer = store === null ? undefined : setInterval(() => {
    retention = retention.then(() =>
      deleteExpiredSamples(store!, config.metricsRetentionDays, logger)
    );
  }, RETENTION_INTERVAL_MS);
  if (store !== null) {
    retention = deleteExpiredSamples(
      store,
      config.metricsRetentionDays,
      logger,
    );
  }

  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });

  logger.info("Stopping: writing what is held");
  clearInterval(retentionTimer);
  await retention;
  const results = await Promise.allSettled([
    ...followers.map((follower) => follower.stop()),
    ...scrapers.map((scraper) => scraper.stop()),
  ]);
  for (const result of results) {
    if (result.status === "rejected") {
      logger.error("Shutdown step failed", {
        err: errorMessage(result.reason),
      });
    }
  }
  store?.close();
  logger.info("Logger stopped");
}
