/// <reference lib="dom" />
/**
 * The two DOM helpers the dashboard's panels share: an element by id, and an element made with
 * its properties and children.
 *
 * @module
 */

/**
 * The page's element with this id.
 *
 * @param id Its id.
 * @returns The element.
 * @throws {Error} When the page has none (the page and the script disagree: a bug).
 */
export function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`The page has no #${id}`);
  return element;
}

/**
 * A new element.
 *
 * @param tag Its tag.
 * @param properties Properties set on it.
 * @param children What goes in it.
 * @returns The element.
 */
export function make<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  properties: Partial<HTMLElementTagNameMap[K]> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const element = Object.assign(document.createElement(tag), properties);
  element.append(...children);
  return element;
}
