/**
 * The one request/response correlation of tallyho's message channels (a child's stdin/stdout,
 * the upgrade's handover socket): each request goes out with a fresh id and waits until a message
 * with that id answers it, or until it is failed (the other side gone, a stop).
 *
 * @module
 */

interface Waiting<T, Tag> {
  tag: Tag;
  resolve(value: T): void;
  reject(error: Error): void;
}

/**
 * Requests waiting for their answers, by id.
 *
 * @example
 * ```ts
 * const leases = new PendingRequests<number>();
 * const first = leases.ask((id) => send({ type: "lease", id, count: 4096 }));
 * // ... when { type: "grant", id, first } arrives:
 * leases.answer(message.id, message.first);
 * ```
 */
export class PendingRequests<T, Tag = undefined> {
  #next = 1;
  readonly #waiting = new Map<number, Waiting<T, Tag>>();

  /**
   * An id no request of this set has, for a message whose answer nobody waits for.
   *
   * @returns The id.
   */
  nextId(): number {
    return this.#next++;
  }

  /**
   * Sends a request and waits for its answer.
   *
   * @param send Sends the request with the id it was given.
   * @param tag What the answer's handler may need to know of the request (see {@linkcode tagOf}).
   * @returns The answer.
   */
  ask(send: (id: number) => void, tag?: Tag): Promise<T> {
    const id = this.#next++;
    const answer = new Promise<T>((resolve, reject) =>
      this.#waiting.set(id, { tag: tag as Tag, resolve, reject })
    );
    send(id);
    return answer;
  }

  /**
   * @param id A request's id.
   * @returns Its tag, or undefined when no request with that id waits.
   */
  tagOf(id: number): Tag | undefined {
    return this.#waiting.get(id)?.tag;
  }

  /**
   * Answers the request `id`.
   *
   * @param id The id the answer carries.
   * @param value The answer.
   * @returns Whether a request waited for it (false for a late or unknown id).
   */
  answer(id: number, value: T): boolean {
    const waiting = this.#waiting.get(id);
    if (waiting === undefined) return false;
    this.#waiting.delete(id);
    waiting.resolve(value);
    return true;
  }

  /**
   * Fails the request `id`.
   *
   * @param id The id the refusal carries.
   * @param error Why.
   * @returns Whether a request waited for it.
   */
  fail(id: number, error: Error): boolean {
    const waiting = this.#waiting.get(id);
    if (waiting === undefined) return false;
    this.#waiting.delete(id);
    waiting.reject(error);
    return true;
  }

  /**
   * Fails every request still waiting: the other side is gone, or this one stops.
   *
   * @param error Why.
   */
  failAll(error: Error): void {
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const request of waiting) request.reject(error);
  }
}
