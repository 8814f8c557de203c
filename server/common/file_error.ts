/**
 * What a failed file operation says to an operator: the system's reason in words, with its code
 * for searching (`no such file (ENOENT)`), rather than the bare code.
 *
 * @module
 */

const REASONS: Readonly<Record<string, string>> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "it is a directory",
  ENOTDIR: "a part of the path is not a directory",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "the name is too long",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  EMFILE: "this process has too many open files",
  ENFILE: "the system has too many open files",
  EIO: "input/output error",
  EFBIG: "over the file size limit",
  EDQUOT: "disk quota exceeded",
};

/**
 * The reason a file operation failed, for a message.
 *
 * @param error What the operation threw.
 * @returns Such as `no such file or directory (ENOENT)`; the error's message when it has no code.
 */
export function fileErrorReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return (error as Error | null)?.message ?? String(error);
  const reason = REASONS[code];
  return reason === undefined ? code : `${reason} (${code})`;
}
