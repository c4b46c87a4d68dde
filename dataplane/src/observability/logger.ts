/**
 * winston, JSON lines on stdout (and optionally a file). Access lines go through the same logger
 * so one pipe carries everything; each line has the request id when there is one.
 */
import winston from "winston";
import type { LogLevel } from "../config/schema.js";

export type { Logger } from "winston";

export function createLogger(level: LogLevel = "info"): winston.Logger {
  return winston.createLogger({
    level: toWinston(level),
    levels: winston.config.npm.levels,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { component: "dataplane" },
    transports: [new winston.transports.Console({ stderrLevels: [] })],
  });
}

/** Applies a (re)loaded logging section to a live logger. */
export function configureLogger(logger: winston.Logger, level: LogLevel, file: string | undefined): void {
  logger.level = toWinston(level);
  const existing = logger.transports.find(
    (t): t is winston.transports.FileTransportInstance => t instanceof winston.transports.File,
  );
  if (existing && existing.filename !== file) logger.remove(existing);
  if (file && (!existing || existing.filename !== file)) {
    logger.add(new winston.transports.File({ filename: file }));
  }
}

/** Harmony's levels are Rust's (trace..error); winston's npm levels call trace "silly". */
const toWinston = (l: LogLevel): string => (l === "trace" ? "silly" : l);
