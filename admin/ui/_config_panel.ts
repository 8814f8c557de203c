/// <reference lib="dom" />
/**
 * The configuration panel: the form of the live keys (from `/v1/config/schema`), the restart
 * keys beside it, Validate and Apply with `If-Match`, errors beside the field they name, and a
 * change made elsewhere noticed at the next poll. The values' handling is `config_form.ts`'s,
 * which holds no DOM code.
 *
 * @module
 */

import type { ConfigSchema } from "../config_schema.ts";
import { type AdminClient, AdminError } from "./_admin_client.ts";
import { $, make } from "./_dom.ts";
import { boundsText, buildPatch, describeChanges, fieldText } from "./config_form.ts";

interface ConfigState {
  etag: string;
  generation: number;
  values: Record<string, unknown>;
}

function generationOf(etag: string | null): number {
  return Number(/"(\d+)"/.exec(etag ?? "")?.[1] ?? 0);
}

function diff(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): Record<string, { from: unknown; to: unknown }> {
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const [key, to] of Object.entries(after)) {
    if (JSON.stringify(before[key]) !== JSON.stringify(to)) {
      changes[key] = { from: before[key], to };
    }
  }
  return changes;
}

/** What the panel needs of the page. */
export interface ConfigPanelHooks {
  /** The signed-in client, or null once signed out. */
  client(): AdminClient | null;
  /** Marks a change on the charts; `render`: draw the marks at once. */
  annotate(text: string, render: boolean): void;
}

/** The configuration panel of the dashboard. */
export class ConfigPanel {
  readonly #hooks: ConfigPanelHooks;
  #schema: ConfigSchema | null = null;
  /** The configuration in force, as last read. */
  #config: ConfigState | null = null;
  /** The configuration the form was filled from: its ETag goes in `If-Match`. */
  #formBase: ConfigState | null = null;
  #dirty = false;
  /** Set while this page's own PATCH is in flight, so a poll does not take it for another's. */
  #applying = false;
  #drainTimeout = "";

  /** @param hooks What the panel needs of the page. */
  constructor(hooks: ConfigPanelHooks) {
    this.#hooks = hooks;
  }

  /** The drain timeout in force, as the configuration shows it (`""` before it is read). */
  get drainTimeout(): string {
    return this.#drainTimeout;
  }

  /** Wires the form's buttons and inputs; once, when the page starts. */
  attach(): void {
    const form = $("config-form") as HTMLFormElement;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.#apply();
    });
    form.addEventListener("input", (event) => {
      this.#dirty = true;
      const key = (event.target as HTMLElement).dataset.key;
      if (key !== undefined) this.#fieldError(key, "");
    });
    $("validate").addEventListener("click", () => void this.#validate());
    $("reset").addEventListener("click", () => {
      if (this.#config) this.#renderForm(this.#config);
      this.#configStatus("", false);
    });
  }

  /**
   * Reads the schema and the configuration once signed in; a failure is shown in the panel.
   *
   * @param client The signed-in client.
   */
  async load(client: AdminClient): Promise<void> {
    try {
      this.#schema = (await client.call<ConfigSchema>("v1/config/schema")).body;
      await this.#readConfig(false);
    } catch (error) {
      this.#configStatus((error as Error).message, true);
    }
  }

  /**
   * Reads the configuration again when a poll saw another generation than the form's, unless
   * it is this page's own change in flight.
   *
   * @param generation The generation `/v1/info` reports.
   */
  async follow(generation: number): Promise<void> {
    if (this.#config !== null && !this.#applying && generation !== this.#config.generation) {
      await this.#readConfig(true);
    }
  }

  /** Reads the configuration; `elsewhere`: a change this page did not make, to annotate. */
  async #readConfig(elsewhere: boolean): Promise<void> {
    const answer = await this.#hooks.client()!.call<Record<string, unknown>>("v1/config");
    const etag = answer.headers.get("etag") ?? "";
    const next = { etag, generation: generationOf(etag), values: answer.body };
    const before = this.#config;
    this.#config = next;
    this.#drainTimeout = String(next.values["drain-timeout"] ?? "");
    if (elsewhere && before !== null && next.generation !== before.generation) {
      const changes = diff(before.values, next.values);
      this.#hooks.annotate(
        `gen ${next.generation} (elsewhere): ${describeChanges(changes)}`,
        false,
      );
      if (this.#dirty) {
        this.#configStatus(
          `The configuration changed elsewhere (now generation ${next.generation}): ` +
            `${describeChanges(changes)}. Your edits are kept; Apply will say if they clash.`,
          false,
        );
      }
    }
    if (!this.#dirty) this.#renderForm(next);
  }

  #renderForm(config: ConfigState): void {
    const schema = this.#schema;
    if (schema === null) return;
    this.#formBase = config;
    this.#dirty = false;
    const live: HTMLElement[] = [];
    const fixed: HTMLElement[] = [];
    for (const [key, keySchema] of Object.entries(schema.keys)) {
      const value = fieldText(config.values[key]);
      if (!keySchema.live) {
        fixed.push(make("dt", {}, key), make("dd", {}, value === "" ? "none" : value));
        continue;
      }
      const id = `field-${key}`;
      let input: HTMLInputElement | HTMLSelectElement;
      if (keySchema.type === "choice" || keySchema.type === "boolean") {
        // A switch is a choice of two, not a box to type "false" into.
        const choices = keySchema.type === "choice" ? keySchema.choices : ["false", "true"];
        input = make(
          "select",
          {},
          ...choices.map((choice) => make("option", { value: choice }, choice)),
        );
        input.value = value;
      } else {
        input = make("input", { type: "text", value, spellcheck: false, autocomplete: "off" });
        if (keySchema.type === "integer") input.inputMode = "numeric";
      }
      input.id = id;
      input.name = key;
      input.dataset.key = key;
      input.setAttribute("aria-describedby", `bounds-${key} error-${key}`);
      live.push(make(
        "div",
        { className: "field" },
        make("label", { htmlFor: id }, key),
        input,
        make("small", { id: `bounds-${key}`, className: "bounds" }, boundsText(keySchema)),
        make("p", { id: `error-${key}`, className: "field-error", hidden: true }),
      ));
    }
    $("config-fields").replaceChildren(...live);
    $("config-restart").replaceChildren(...fixed);
    $("config-generation").textContent = `generation ${config.generation}`;
  }

  #patch(): Record<string, unknown> {
    const texts: Record<string, string> = {};
    for (const element of $("config-fields").querySelectorAll<HTMLInputElement>("[data-key]")) {
      texts[element.dataset.key!] = element.value;
    }
    return buildPatch(this.#schema!, this.#formBase!.values, texts);
  }

  #fieldError(key: string, message: string): boolean {
    const error = document.getElementById(`error-${key}`);
    const input = document.getElementById(`field-${key}`);
    if (error === null || input === null) return false;
    error.textContent = message;
    error.hidden = message === "";
    if (message === "") input.removeAttribute("aria-invalid");
    else input.setAttribute("aria-invalid", "true");
    return true;
  }

  #clearFieldErrors(): void {
    for (const error of $("config-fields").querySelectorAll<HTMLElement>(".field-error")) {
      this.#fieldError(error.id.slice("error-".length), "");
    }
  }

  #configStatus(message: string, isError: boolean): void {
    const status = $("config-status");
    status.textContent = message;
    status.classList.toggle("error", isError);
  }

  /** Shows an API error beside its field when it names one, in the status line otherwise. */
  #configError(prefix: string, error: unknown): void {
    if (error instanceof AdminError && error.field !== undefined) {
      if (this.#fieldError(error.field, error.message)) {
        this.#configStatus(`${prefix}: ${error.field} — see the field.`, true);
        document.getElementById(`field-${error.field}`)?.focus();
        return;
      }
    }
    this.#configStatus(`${prefix}: ${(error as Error).message}`, true);
  }

  async #validate(): Promise<void> {
    const client = this.#hooks.client();
    if (client === null || this.#formBase === null) return;
    this.#clearFieldErrors();
    const patch = this.#patch();
    if (Object.keys(patch).length === 0) return this.#configStatus("Nothing changed.", false);
    try {
      const { body } = await client.call<{ changes: Record<string, never> }>(
        "v1/config/validate",
        { method: "POST", json: patch },
      );
      this.#configStatus(`Valid: ${describeChanges(body.changes)}.`, false);
    } catch (error) {
      this.#configError("Not valid", error);
    }
  }

  async #apply(): Promise<void> {
    const base = this.#formBase;
    const client = this.#hooks.client();
    if (client === null || base === null) return;
    this.#clearFieldErrors();
    const patch = this.#patch();
    if (Object.keys(patch).length === 0) return this.#configStatus("Nothing to apply.", false);
    let answer;
    this.#applying = true;
    try {
      answer = await client.call<Record<string, unknown>>("v1/config", {
        method: "PATCH",
        headers: { "if-match": base.etag },
        json: patch,
      });
    } catch (error) {
      this.#applying = false;
      if (error instanceof AdminError && error.status === 412) {
        this.#dirty = false;
        await this.#readConfig(true);
        this.#configStatus(
          "Not applied: someone else changed the configuration first (it is now generation " +
            `${this.#config?.generation}). The form shows the current values; make your ` +
            "change again.",
          true,
        );
        return;
      }
      return this.#configError("Not applied", error);
    }
    this.#applying = false;
    const etag = answer.headers.get("etag") ?? "";
    const next = { etag, generation: generationOf(etag), values: answer.body };
    const described = describeChanges(diff(base.values, next.values));
    this.#config = next;
    this.#drainTimeout = String(next.values["drain-timeout"] ?? "");
    this.#hooks.annotate(`gen ${next.generation}: ${described}`, true);
    this.#renderForm(next);
    this.#configStatus(`Applied as generation ${next.generation}: ${described}.`, false);
  }
}
