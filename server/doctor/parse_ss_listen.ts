/**
 * Reads a listener's backlog from `ss -ltn` output.
 *
 * For a socket in LISTEN state, ss's Send-Q column is the backlog the kernel enforces
 * (`sk_max_ack_backlog`: what listen() asked for, cut to `net.core.somaxconn`) and Recv-Q is how
 * many connections wait in its accept queue now.
 *
 * @module
 */

/**
 * Finds the LISTEN socket bound to `port` and returns its Send-Q.
 *
 * @param text What `ss -ltn` printed, with or without its header line.
 * @param port The listener's port.
 * @returns The backlog.
 * @throws {RangeError} When no LISTEN row has that port, or its Send-Q is not a number.
 *
 * @example
 * ```ts
 * parseSsBacklog("LISTEN 0 512 127.0.0.1:40123 0.0.0.0:*", 40123); // 512
 * ```
 */
export function parseSsBacklog(text: string, port: number): number {
  for (const line of text.split("\n")) {
    const columns = line.trim().split(/\s+/);
    if (columns[0] !== "LISTEN" || !columns[3]?.endsWith(`:${port}`)) continue;
    const sendQ = columns[2]!;
    if (!/^\d+$/.test(sendQ)) {
      throw new RangeError(`ss printed a Send-Q that is not a number: got ${JSON.stringify(line)}`);
    }
    return Number(sendQ);
  }
  throw new RangeError(
    `ss lists no LISTEN socket on port ${port}: got ${JSON.stringify(text.trim().slice(0, 200))}`,
  );
}
