/**
 * Server event types the SDK declares (`ServerEvents`) that the scenario does not provoke, each with the
 * reason: only events that need a fault (or a wait no test should pay) belong here. Everything else the
 * SDK declares must show up in the recording, or the run fails.
 */
export const UNPROVOKED_EVENTS: Readonly<Record<string, string>> = {};
