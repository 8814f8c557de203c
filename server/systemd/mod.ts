/**
 * systemd integration: sd_notify(3) messages for a `Type=notify` unit.
 *
 * @module
 */

export { NOTIFY_SOCKET_ENV, notifySocketAddress, NotifySocketError } from "./notify_address.ts";
export { type NotifierOptions, SystemdNotifier } from "./notifier.ts";
