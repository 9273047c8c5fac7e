/**
 * Entry point that picks the exposition parser from the response's
 * Content-Type, and the Accept header a scraper sends.
 *
 * @module
 */

import { parseOpenMetrics } from "./openmetrics.ts";
import { parseTextFormat } from "./text_format.ts";
import type { ParsedExposition } from "./types.ts";

/**
 * Accept header for scrape requests: OpenMetrics 1.0.0 first, then
 * OpenMetrics 0.0.1, then the text format 0.0.4, then anything.
 *
 * The media types and q-values are the ones Prometheus's `acceptHeader()`
 * (scrape/scrape.go) builds for its default protocol list before text 1.0.0
 * was added to it. Responses in either OpenMetrics version go to
 * {@linkcode parseOpenMetrics}, and any other response goes to
 * {@linkcode parseTextFormat}.
 */
export const SCRAPE_ACCEPT_HEADER =
  "application/openmetrics-text;version=1.0.0;q=0.5," +
  "application/openmetrics-text;version=0.0.1;q=0.4," +
  "text/plain;version=0.0.4;q=0.3," +
  "*/*;q=0.2";

const OPENMETRICS_MEDIA_TYPE = "application/openmetrics-text";

/**
 * Returns whether a Content-Type header value names OpenMetrics text,
 * ignoring parameters, case and surrounding blanks.
 */
export function isOpenMetricsContentType(contentType: string | null): boolean {
  if (contentType === null) {
    return false;
  }
  const semicolon = contentType.indexOf(";");
  const mediaType = semicolon === -1
    ? contentType
    : contentType.slice(0, semicolon);
  return mediaType.trim().toLowerCase() === OPENMETRICS_MEDIA_TYPE;
}

/**
 * Parses a scrape body with the parser its Content-Type calls for:
 * `application/openmetrics-text` goes to the OpenMetrics parser, and anything
 * else, a missing header (`null`) included, to the text format 0.0.4 parser.
 */
export function parseExposition(
  body: string,
  contentType: string | null,
): ParsedExposition {
  return isOpenMetricsContentType(contentType)
    ? parseOpenMetrics(body)
    : parseTextFormat(body);
}
