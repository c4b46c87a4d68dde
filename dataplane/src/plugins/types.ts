/**
 * The plugin contract. An endpoint, middleware or backend is one module exporting one of these
 * objects plus a line in registry.ts. The executor only ever sees these interfaces; it knows
 * nothing about HTTP upstreams, FHIR or DICOM.
 */
import type { Static, TSchema } from "@sinclair/typebox";
import type { Logger } from "winston";
import type { ProxyResponse, RequestContext } from "../pipeline/context.js";
import type { HarmonyProblem } from "../pipeline/errors.js";
import type { SharedResources } from "../runtime/resources.js";
import type { Metrics } from "../observability/metrics.js";
import type { ServerResponse } from "node:http";
import type { HarmonyNetwork, NetworkProblem } from "../network/config.js";
import type { ValueMatchSpec } from "../pipeline/route-match.js";

/** What every plugin factory gets besides its options. */
export interface BuildContext {
  /** Instance name in config (`[backends.<name>]`). */
  name: string;
  baseDir: string;
  transformsDir: string;
  logger: Logger;
  resources: SharedResources;
  /** Resolves a path relative to the main config file's directory. */
  resolvePath(p: string): string;
  /**
   * Reads a file the config refers to (keys, specs, CA bundles), relative paths resolved as above.
   * Plugins read through this, not node:fs, so a config can be validated away from the disk it
   * will run on (the operator checks what it renders before writing it).
   */
  readFile(p: string): Buffer;
  /** A named top-level table of the config (`policies`, `rules`, `mesh`...), as written. */
  table(name: string): Record<string, unknown>;
  /** The process's metrics, for plugins that report their own (absent when only checking a config). */
  metrics?: Metrics;
  /** `[harmony_networks.*]` that loaded (identity, directory, policies), for harmony:// targets. */
  harmonyNetworks(): ReadonlyMap<string, HarmonyNetwork>;
  /** Why a `[harmony_networks.*]` entry did not load (reported once, by the resolver). */
  harmonyNetworkProblems(): NetworkProblem[];
}

/** A plugin-level validation failure, reported against `<table>.<name>.options.<path>`. */
export interface OptionProblem {
  path: (string | number)[];
  message: string;
  severity?: "error" | "warning";
}

interface PluginBase<S extends TSchema> {
  /** Canonical type name, as written in config. */
  type: string;
  aliases?: readonly string[];
  /** JSON Schema of `options`, checked at load before `create` is called. */
  options: S;
  /** Checks that need more than a schema (files exist, URLs parse). Run at load. */
  check?(options: Static<S>, ctx: BuildContext): OptionProblem[];
}

export interface RouteSpec {
  /** Path prefix this endpoint claims; matches the prefix itself and anything below it. */
  prefix: string;
  /** Allowed methods; `*` means any. */
  methods: readonly string[] | "*";
  /** Gateway API Exact: `prefix` is the whole path, not a prefix. */
  exact?: boolean;
  /** Hosts served (exact or `*.suffix`); absent or empty: any Host. */
  hostnames?: readonly string[];
  /** Header matches, all required (names case-insensitive). */
  headers?: readonly ValueMatchSpec[];
  /** Query parameter matches, all required. */
  query?: readonly ValueMatchSpec[];
  /** Tie-break after Gateway API specificity; lower wins (default 0). */
  precedence?: number;
  /** A request this route refuses only for its method: 404 (Gateway API: no match) instead of 405. */
  methodMismatch404?: boolean;
}

/** A request that did not arrive over HTTP (a DIMSE operation, read as the DICOMweb request it stands for). */
export interface InternalRequest {
  method: string;
  /** Path below the endpoint, starting with `/`, e.g. `/studies`. */
  path: string;
  /** Query string with its `?`, or "". */
  search: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Who asked (for logs and policies): the peer's address. */
  clientAddress: string | undefined;
  /** A label for the access log, e.g. "C-FIND ORTHANC→HARMONY". */
  label: string;
}

/** Runs an internal request through the endpoint's pipeline; failures come back as responses, never throws. */
export type InternalRun = (req: InternalRequest) => Promise<ProxyResponse>;

export interface EndpointInstance {
  routes: RouteSpec[];
  /**
   * For endpoints that listen on their own (DIMSE): called each time a config generation that
   * contains the endpoint goes live, with the way to run requests through its pipeline.
   */
  serve?(run: InternalRun): void;
  /**
   * For endpoints that listen on their own: binds the listener before a generation containing the
   * endpoint goes live; a rejection fails the reload and the previous generation keeps serving.
   */
  listen?(): Promise<void>;
  /** Whether that listener is bound now (readiness is false while it is not). */
  listening?(): boolean;
  /** Runs before the middleware chain (protocol-specific ingestion). */
  onRequest?(ctx: RequestContext): void | Promise<void>;
  /** Renders an error in the protocol's own shape; default is application/problem+json. */
  renderError?(problem: HarmonyProblem, ctx: RequestContext, res: ServerResponse): void;
}

export interface EndpointPlugin<S extends TSchema = TSchema> extends PluginBase<S> {
  kind: "endpoint";
  /** True when the endpoint listens on a port of its own (DIMSE) rather than on a network's HTTP listener. */
  ownListener?: boolean;
  /** The port an own-listener endpoint binds (0 or undefined: none to check), for clash checks at load. */
  listenPort?(options: Static<S>): number | undefined;
  /** A middleware type its pipelines must list: the endpoint reads requests, that middleware serves them. */
  requiresMiddleware?: string;
  create(options: Static<S>, ctx: BuildContext): EndpointInstance;
}

export interface MiddlewareInstance {
  /** Request side ("left"). May end the request early by setting `ctx.response`. */
  onRequest?(ctx: RequestContext): void | Promise<void>;
  /** Response side ("right"). Sees `ctx.response`, whose body is a stream to read or replace. */
  onResponse?(ctx: RequestContext): void | Promise<void>;
}

export interface MiddlewarePlugin<S extends TSchema = TSchema> extends PluginBase<S> {
  kind: "middleware";
  create(options: Static<S>, ctx: BuildContext): MiddlewareInstance;
}

export interface BackendInstance {
  /**
   * Produces the response: sets `ctx.response`, or, when `ctx.streamToClient` is true, may write
   * the upstream response straight to the client and set `ctx.responded`.
   */
  handle(ctx: RequestContext): Promise<void>;
  /**
   * The same exchange without a promise, for a route where nothing else runs (no endpoint
   * `onRequest`, no middleware hook on either side, no body being watched): the response goes
   * straight to the client (`ctx.streamToClient` holds), `ctx.responded` and `ctx.status` are set
   * as `handle` sets them, and `done` is called exactly once, with what `handle` would have
   * rejected with, or undefined. Never throws. Optional: a backend may offer it only for the
   * configurations it can serve this way (the executor falls back to `handle`).
   */
  stream?(ctx: RequestContext, done: StreamDone): void;
}

/** How a backend's `stream` reports the end of an exchange: one call, no closure per request. */
export type StreamDone = (ctx: RequestContext, err: unknown) => void;

export interface BackendPlugin<S extends TSchema = TSchema> extends PluginBase<S> {
  kind: "backend";
  create(options: Static<S>, ctx: BuildContext): BackendInstance;
}

export type AnyPlugin = EndpointPlugin | MiddlewarePlugin | BackendPlugin;
