/**
 * Alert evaluation after each stored scrape, per container and per label
 * set. Each label set that a rule's condition yields is its own alert
 * instance, keyed by rule, container and labels (without `le`).
 *
 * The value of a comparison's operand in one scrape:
 *
 * - `up`: 1 when the scrape succeeded, 0 when it failed.
 * - A gauge (also an untyped or unknown series, and a summary's quantile
 *   series): the latest sample.
 * - A counter, and a `_bucket`, `_sum` or `_count` series named directly:
 *   the per-second rate between the previous successful scrape and this one.
 *   Any decrease is a counter reset, so the rate is never negative.
 * - A histogram family without a function: the mean observation in that
 *   interval, the increase of `_sum` divided by the increase of `_count`.
 * - `pNN(histogram)`: the quantile of the observations in that interval,
 *   from the bucket increases, interpolated like PromQL
 *   `histogram_quantile()`. A rank in the `+Inf` bucket gives the highest
 *   finite bound, so the true value is at least that.
 *
 * Some operands have no value: a counter or histogram in the first scrape
 * after a series appeared, a histogram that observed nothing in the
 * interval, and a NaN sample. A comparison without a value does not hold,
 * as a PromQL comparison with NaN or with no series does not, so a firing
 * alert on request latency resolves when no request finished in the last
 * interval.
 *
 * NOTE: at a 5 s scrape interval a server that finishes few requests has
 * intervals without observations, and each one resets a pending percentile
 * or mean rule.
 *
 * A failed scrape (up = 0) neither fires nor resolves a rule on vLLM metrics,
 * because their values are unknown then, not false. Pending time keeps
 * running across failed scrapes. Rules made only of `up` comparisons are
 * evaluated on every scrape.
 *
 * Comparisons joined by `and` yield the label sets of the first comparison.
 * The condition holds for a label set when its first comparison holds and
 * each later comparison holds for at least one series whose labels agree
 * with it on every label name both have (`up` has no labels, so it agrees
 * with all). The event's value and threshold are those of the first
 * comparison.
 *
 * A rule is pending from the first scrape where its condition holds and
 * fires at the first evaluation where the scrape time minus the pending
 * start reaches `duration`, like Prometheus's `for`. It resolves at the
 * first successful scrape where the condition stops holding or its series
 * is gone. Each transition writes one line to `alerts.log`, and the state
 * is saved in the `alert_state` table, so a restarted logger continues it.
 * After a restart the first rates span the time since the last successful
 * scrape stored before it, and pending time includes the time the logger
 * was down, as it includes failed scrapes. Times are the scrapes' wall-clock
 * start times, so a clock stepped back delays firing by the step.
 *
 * @module
 */
import { errorMessage, type LogFields, type Logger } from "../log.ts";
import type { Sample } from "../metrics/exposition/types.ts";
import type { MetricsStore, ScrapeHealth } from "../metrics/store.ts";
import {
  type AlertEvent,
  type AlertEventState,
  AlertLog,
} from "./alert_log.ts";
import {
  type AlertStateChange,
  type AlertStateRow,
  ensureAlertStateTable,
  loadAlertStates,
  writeAlertStates,
} from "./alert_state.ts";
import { type Condition, formatOperand, parseCondition } from "./condition.ts";
import {
  evaluateCondition,
  type EvaluationContext,
  indexScrape,
  type Outcome,
  type ScrapeValues,
  seriesKey,
} from "./condition_values.ts";
import type { AlertRule, AlertRules } from "./rules.ts";

function appliesTo(rule: AlertRule, container: string): boolean {
  return rule.container === null || rule.container === container;
}

function isUpOnly(rule: AlertRule): boolean {
  return rule.condition.comparisons.every((c) => c.operand.kind === "up");
}

/** Formats a condition so that spacing and label order do not matter. */
function canonicalCondition(condition: Condition): string {
  return condition.comparisons
    .map((c) => `${formatOperand(c.operand)} ${c.operator} ${c.threshold}`)
    .join(" and ");
}

function sameCondition(storedText: string, rule: AlertRule): boolean {
  try {
    return canonicalCondition(parseCondition(storedText)) ===
      canonicalCondition(rule.condition);
  } catch {
    return false;
  }
}

/**
 * Loads the samples of the container's last successful scrape before
 * `scrapeId`, so the first rates after a restart span the gap.
 */
function loadPreviousScrape(
  store: MetricsStore,
  container: string,
  scrapeId: number,
): ScrapeValues | null {
  const scrape = store.db.prepare(
    `SELECT id, timestamp FROM scrapes
     WHERE container = ? AND up = 1 AND id < ? ORDER BY id DESC LIMIT 1`,
  ).get(container, scrapeId) as { id: number; timestamp: number } | undefined;
  if (scrape === undefined) return null;
  const rows = store.db.prepare(
    `SELECT se.metric_name, se.labels, sa.value FROM samples sa
     JOIN series se ON se.id = sa.series_id WHERE sa.scrape_id = ?`,
  ).all(scrape.id) as Record<string, unknown>[];
  const values = new Map<string, number>();
  for (const row of rows) {
    const value = row.value === null ? NaN : Number(row.value);
    values.set(seriesKey(String(row.metric_name), String(row.labels)), value);
  }
  return { timestampMs: Number(scrape.timestamp), values };
}

/** An active (pending or firing) alert instance. */
interface Instance {
  rule: AlertRule;
  labels: Record<string, string>;
  /** Canonical JSON of `labels`. */
  labelsKey: string;
  pendingSinceMs: number;
  firedAtMs: number | null;
  value: number | null;
  evaluatedAtMs: number;
}

/** Engine state of one container. */
interface ContainerState {
  previous: ScrapeValues | null;
  /** Active instances by {@link instanceKey}. */
  instances: Map<string, Instance>;
  /** Instances changed since the last save, by {@link instanceKey}. */
  unsaved: Map<string, { rule: string; labelsKey: string }>;
  /** Rules already reported as matching no series. */
  reportedEmpty: Set<string>;
}

function instanceKey(rule: string, labelsKey: string): string {
  return `${rule}\u0000${labelsKey}`;
}

/** Options of {@linkcode AlertEngine.open}. */
export interface AlertEngineOptions {
  rules: AlertRules;
  /** The database the scrapes are stored in, which also stores the alert state. */
  store: MetricsStore;
  /** Path of the event file, normally `<output_dir>/alerts.log`. */
  alertLogPath: string;
  logger: Logger;
}

/** Evaluates alert rules after each stored scrape and writes their events. */
export class AlertEngine {
  readonly #rules: readonly AlertRule[];
  readonly #rulesByName: Map<string, AlertRule>;
  readonly #store: MetricsStore;
  readonly #alertLog: AlertLog;
  readonly #logger: Logger;
  readonly #containers = new Map<string, ContainerState>();
  readonly #warned = new Set<string>();
  #alertLogFailing = false;
  #stateFailing = false;

  /**
   * Creates the `alert_state` table when missing and returns an engine. The
   * state of a container is loaded at its first scrape.
   */
  static open(options: AlertEngineOptions): AlertEngine {
    ensureAlertStateTable(options.store.db);
    return new AlertEngine(options);
  }

  constructor(options: AlertEngineOptions) {
    this.#rules = options.rules.rules;
    this.#rulesByName = new Map(this.#rules.map((rule) => [rule.name, rule]));
    this.#store = options.store;
    this.#alertLog = new AlertLog(options.alertLogPath);
    this.#logger = options.logger.child({ component: "alerts" });
  }

  /**
   * Evaluates every rule for the scrape's container; call it from the
   * scraper's `onStored`. It catches and logs every error, because the
   * scraper would report an exception from `onStored` as a failed database
   * write.
   */
  onScrape(
    scrapeId: number,
    health: ScrapeHealth,
    samples: readonly Sample[],
  ): void {
    try {
      this.#evaluate(scrapeId, health, samples);
    } catch (error) {
      this.#logger.error("Alert evaluation failed", {
        container: health.container,
        scrape_id: scrapeId,
        err: errorMessage(error),
      });
    }
  }

  #evaluate(
    scrapeId: number,
    health: ScrapeHealth,
    samples: readonly Sample[],
  ): void {
    const state = this.#containerState(health, scrapeId);
    const current = health.up ? indexScrape(health.timestampMs, samples) : null;
    const context: EvaluationContext = {
      up: health.up,
      current,
      previous: state.previous,
      warnOnce: (key, message, fields) =>
        this.#warnOnce(key, message, {
          ...fields,
          container: health.container,
        }),
    };
    for (const rule of this.#rules) {
      if (!appliesTo(rule, health.container)) continue;
      // Without a scrape the values of vLLM metrics are unknown, not false.
      if (current === null && !isUpOnly(rule)) continue;
      const outcomes = evaluateCondition(rule, context);
      if (outcomes.size === 0) this.#reportEmpty(state, rule, health.container);
      this.#advance(state, health, rule, outcomes);
    }
    if (current !== null) state.previous = current;
    this.#save(health.container, state);
  }

  /** Moves each instance of one rule through pending, firing and resolved. */
  #advance(
    state: ContainerState,
    health: ScrapeHealth,
    rule: AlertRule,
    outcomes: Map<string, Outcome>,
  ): void {
    const nowMs = health.timestampMs;
    const seen = new Set<string>();
    for (const [labelsKey, outcome] of outcomes) {
      const key = instanceKey(rule.name, labelsKey);
      seen.add(key);
      let instance = state.instances.get(key);
      if (!outcome.holds) {
        if (instance !== undefined) {
          this.#end(state, health, instance, outcome.value);
        }
        continue;
      }
      if (instance === undefined) {
        instance = {
          rule,
          labels: outcome.labels,
          labelsKey,
          pendingSinceMs: nowMs,
          firedAtMs: null,
          value: outcome.value,
          evaluatedAtMs: nowMs,
        };
        state.instances.set(key, instance);
      }
      instance.value = outcome.value;
      instance.evaluatedAtMs = nowMs;
      const heldMs = nowMs - instance.pendingSinceMs;
      if (instance.firedAtMs === null && heldMs >= rule.durationMs) {
        if (this.#writeEvent(health.container, instance, "firing", nowMs)) {
          instance.firedAtMs = nowMs;
        }
      }
      state.unsaved.set(key, { rule: rule.name, labelsKey });
    }
    // A label set missing from a successful scrape no longer holds.
    for (const [key, instance] of state.instances) {
      if (instance.rule === rule && !seen.has(key)) {
        this.#end(state, health, instance, null);
      }
    }
  }

  /** Ends an instance that stopped holding; a firing one writes `resolved`. */
  #end(
    state: ContainerState,
    health: ScrapeHealth,
    instance: Instance,
    value: number | null,
  ): void {
    const key = instanceKey(instance.rule.name, instance.labelsKey);
    instance.value = value;
    instance.evaluatedAtMs = health.timestampMs;
    state.unsaved.set(key, {
      rule: instance.rule.name,
      labelsKey: instance.labelsKey,
    });
    if (
      instance.firedAtMs !== null &&
      !this.#writeEvent(
        health.container,
        instance,
        "resolved",
        health.timestampMs,
      )
    ) {
      // Stays firing, so the next evaluation writes `resolved` again.
      return;
    }
    state.instances.delete(key);
  }

  /** Appends an event and logs it; returns false when the file write failed. */
  #writeEvent(
    container: string,
    instance: Instance,
    eventState: AlertEventState,
    nowMs: number,
  ): boolean {
    const rule = instance.rule;
    const event: AlertEvent = {
      timestamp: new Date(nowMs).toISOString(),
      container,
      alert: rule.name,
      state: eventState,
      value: instance.value,
      threshold: rule.condition.comparisons[0]!.threshold,
      condition: rule.condition.text,
      labels: instance.labels,
      level: rule.level,
    };
    if (!this.#append(event)) return false;
    const fields: LogFields = {
      container,
      alert: rule.name,
      value: event.value,
      threshold: event.threshold,
      labels: instance.labelsKey,
    };
    if (eventState === "resolved") {
      this.#logger.info("Alert resolved", fields);
    } else if (rule.action === "log_error") {
      this.#logger.error("Alert firing", fields);
    } else if (rule.action === "log_warning") {
      this.#logger.warn("Alert firing", fields);
    } else {
      this.#logger.info("Alert firing", fields);
    }
    return true;
  }

  #append(event: AlertEvent): boolean {
    try {
      this.#alertLog.append(event);
    } catch (error) {
      if (!this.#alertLogFailing) {
        this.#logger.error(
          "Writing alerts.log failed; retrying at the next scrape",
          {
            path: this.#alertLog.path,
            container: event.container,
            alert: event.alert,
            state: event.state,
            err: errorMessage(error),
          },
        );
      }
      this.#alertLogFailing = true;
      return false;
    }
    if (this.#alertLogFailing) {
      this.#logger.info("Writing alerts.log resumed", {
        path: this.#alertLog.path,
      });
      this.#alertLogFailing = false;
    }
    return true;
  }

  /**
   * Saves changed instances; on failure keeps them for the next scrape.
   *
   * NOTE: events are appended before the state is saved, so a crash between
   * the two repeats a `firing` or `resolved` line after the restart.
   */
  #save(container: string, state: ContainerState): void {
    if (state.unsaved.size === 0) return;
    const changes: AlertStateChange[] = [];
    for (const [key, { rule, labelsKey }] of state.unsaved) {
      const instance = state.instances.get(key);
      changes.push(
        instance === undefined
          ? { kind: "delete", container, rule, labels: labelsKey }
          : { kind: "upsert", row: stateRow(container, instance) },
      );
    }
    try {
      writeAlertStates(this.#store.db, changes);
    } catch (error) {
      if (!this.#stateFailing) {
        this.#logger.error(
          "Saving alert state failed; retrying at the next scrape",
          { container, err: errorMessage(error) },
        );
      }
      this.#stateFailing = true;
      return;
    }
    state.unsaved.clear();
    if (this.#stateFailing) {
      this.#logger.info("Saving alert state resumed", { container });
      this.#stateFailing = false;
    }
  }

  /** Returns the container's state, loading it at the container's first scrape. */
  #containerState(health: ScrapeHealth, scrapeId: number): ContainerState {
    const container = health.container;
    const existing = this.#containers.get(container);
    if (existing !== undefined) return existing;
    const state: ContainerState = {
      previous: loadPreviousScrape(this.#store, container, scrapeId),
      instances: new Map(),
      unsaved: new Map(),
      reportedEmpty: new Set(),
    };
    for (const row of loadAlertStates(this.#store.db, container)) {
      const rule = this.#rulesByName.get(row.rule);
      if (
        rule === undefined || !sameCondition(row.condition, rule) ||
        !appliesTo(rule, container)
      ) {
        this.#retire(state, row, health.timestampMs);
        continue;
      }
      state.instances.set(instanceKey(row.rule, row.labels), {
        rule,
        labels: JSON.parse(row.labels),
        labelsKey: row.labels,
        pendingSinceMs: row.pendingSinceMs,
        firedAtMs: row.firedAtMs,
        value: row.value,
        evaluatedAtMs: row.evaluatedAtMs,
      });
    }
    this.#containers.set(container, state);
    return state;
  }

  /**
   * Drops a stored instance whose rule was removed since the last run, or
   * whose condition or container changed. A firing one gets its `resolved`
   * event with the stored condition. If that write fails, the row stays for
   * the next start.
   */
  #retire(state: ContainerState, row: AlertStateRow, nowMs: number): void {
    if (row.firedAtMs !== null) {
      const written = this.#append({
        timestamp: new Date(nowMs).toISOString(),
        container: row.container,
        alert: row.rule,
        state: "resolved",
        value: row.value,
        threshold: row.threshold,
        condition: row.condition,
        labels: JSON.parse(row.labels),
        level: row.level as AlertEvent["level"],
      });
      if (!written) return;
      this.#logger.info(
        "Alert resolved: its rule was removed or its condition or container changed",
        { container: row.container, alert: row.rule, labels: row.labels },
      );
    }
    state.unsaved.set(instanceKey(row.rule, row.labels), {
      rule: row.rule,
      labelsKey: row.labels,
    });
  }

  #reportEmpty(
    state: ContainerState,
    rule: AlertRule,
    container: string,
  ): void {
    if (state.reportedEmpty.has(rule.name)) return;
    state.reportedEmpty.add(rule.name);
    this.#logger.info(
      "Alert rule matches no series yet; it cannot fire until one appears",
      { container, alert: rule.name, condition: rule.condition.text },
    );
  }

  #warnOnce(key: string, message: string, fields: LogFields): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#logger.warn(message, fields);
  }
}

function stateRow(container: string, instance: Instance): AlertStateRow {
  const rule = instance.rule;
  return {
    container,
    rule: rule.name,
    labels: instance.labelsKey,
    condition: rule.condition.text,
    threshold: rule.condition.comparisons[0]!.threshold,
    level: rule.level,
    pendingSinceMs: instance.pendingSinceMs,
    firedAtMs: instance.firedAtMs,
    value: instance.value,
    evaluatedAtMs: instance.evaluatedAtMs,
  };
}
