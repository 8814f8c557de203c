/**
 * Test fixture: a throwaway certificate authority made with `openssl` in a temporary directory,
 * with a server certificate for 127.0.0.1 and a client certificate it signed, and a client
 * certificate another CA signed (one the server must refuse). Keys are EC P-256 (fast to make)
 * in PKCS#8, which both runtimes' TLS stacks read; every key file has mode 0600.
 *
 * The server certificate allows client authentication too: etcd's JSON gateway dials its own
 * member with the server certificate as a client certificate, so under `--client-cert-auth` a
 * server-only certificate makes every gateway request fail with 503 ("incompatible key usage"
 * in etcd's log; etcd-io/etcd#9785, #16590).
 *
 * @module
 */

import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { skipOffCi, toolMissing } from "./_tools.ts";

/** Where `openssl` is looked for. */
export const OPENSSL = "openssl";

/** Off CI, why tests that make certificates skip when openssl is missing; under CI, false. */
export const skipOpenssl: string | false = skipOffCi(toolMissing(OPENSSL, "openssl"));

/** The files, by path. */
export interface TestCertificates {
  /** The directory that holds them. */
  dir: string;
  /** The CA's certificate, to trust (`--numbers-ca-file`, etcd's `--trusted-ca-file`). */
  ca: string;
  /** The server's certificate (for IP 127.0.0.1) and key. */
  serverCert: string;
  serverKey: string;
  /** A client certificate the CA signed, and its key. */
  clientCert: string;
  clientKey: string;
  /** A client certificate another CA signed, and its key: the server must refuse it. */
  strangerCert: string;
  strangerKey: string;
  /** Removes the directory. */
  close(): void;
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(OPENSSL, args, { cwd, timeout: 20_000 }, (error, _out, stderr) => {
      if (error) reject(new Error(`openssl ${args.join(" ")}: ${error.message}\n${stderr}`));
      else resolve();
    });
  });
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl([
    "req",
    "-x509",
    ...EC,
    "-keyout",
    `${name}-key.pem`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=tallyho test ${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
}

async function makeSigned(
  dir: string,
  name: string,
  ca: string,
  extensions: string,
): Promise<void> {
  await openssl(
    ["req", ...EC, "-keyout", `${name}-key.pem`, "-out", `${name}.csr`, "-subj", `/CN=${name}`],
    dir,
  );
  writeFileSync(join(dir, `${name}.ext`), extensions);
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.pem`,
    "-CAkey",
    `${ca}-key.pem`,
    "-CAcreateserial",
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ], dir);
  chmodSync(join(dir, `${name}-key.pem`), 0o600);
}

/**
 * Makes the CA and the certificates.
 *
 * @returns Their paths; call `close()` when done.
 */
export async function makeCertificates(): Promise<TestCertificates> {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-pki-"));
  try {
    await makeCa(dir, "ca");
    await makeCa(dir, "stranger-ca");
    await makeSigned(
      dir,
      "server",
      "ca",
      "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n" +
        "basicConstraints=CA:FALSE\n",
    );
    const client = "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n";
    await makeSigned(dir, "client", "ca", client);
    await makeSigned(dir, "stranger", "stranger-ca", client);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const at = (file: string) => join(dir, file);
  return {
    dir,
    ca: at("ca.pem"),
    serverCert: at("server.pem"),
    serverKey: at("server-key.pem"),
    clientCert: at("client.pem"),
    clientKey: at("client-key.pem"),
    strangerCert: at("stranger.pem"),
    strangerKey: at("stranger-key.pem"),
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** One self-signed certificate (`NAME.crt`, `NAME.key`): see bench/compare/certificate.ts. */
export { selfSignedCertificate } from "../bench/compare/certificate.ts";
