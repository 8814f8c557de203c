/**
 * The version, read from package.json so there is one place to change it.
 *
 * @module
 */

import pkg from "../package.json" with { type: "json" };

/** tallyho's version. */
export const VERSION: string = pkg.version;
