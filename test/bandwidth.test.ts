// readBytes (the memory-read kernel of bench/kernel-hosts.mjs) against readBytesRef and a JavaScript
// model of its checksum, on lengths around the 16- and 64-byte steps and at unaligned addresses.
// readChunks (bench/scattered.mjs) against readChunksRef and the same model. dotPeak
// (bench/kernels.mjs) against dotPeakRef.

import { beforeAll, beforeEach, describe, expect, test } from "vitest";
import { type KernelModule, loadKernelModule, seededRandom } from "./wasm-harness.js";

/** Exports of assembly/kernels/bandwidth.ts in the test module. */
interface BandwidthExports {
  readBytes(pointer: number, bytes: number): number;
  readBytesRef(pointer: number, bytes: number): number;
  readChunks(list: number, count: number, bytes: number): number;
  readChunksRef(list: number, count: number, bytes: number): number;
  dotPeak(steps: number): number;
  dotPeakRef(steps: number): number;
}

/** Lengths below, at and above each loop step (4, 16, 64 bytes), and larger odd sizes. */
const LENGTHS = [0, 1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 79, 127, 128, 129, 1000, 4095, 4096, 4097, 65543];

/** Start offsets from a 64-byte aligned address. */
const OFFSETS = [0, 1, 3, 4, 15, 16, 33];

/** Computes Σ bytes[i] << (8 · (i mod 4)) modulo 2^32 as an i32, the checksum readBytes defines. */
function checksumModel(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) sum = (sum + bytes[i] * 2 ** (8 * (i % 4))) % 2 ** 32;
  return sum | 0;
}

let m: KernelModule;
let kernels: BandwidthExports;

beforeAll(async () => {
  m = await loadKernelModule("exact");
  kernels = m.exports as unknown as BandwidthExports;
});

beforeEach(() => {
  m.reset();
});

describe("readBytes", () => {
  /** Allocates length + 128 bytes of random data and returns the address offset bytes in. */
  function putRandomBytes(length: number, offset: number, seed: number): number {
    const random = seededRandom(seed);
    const base = m.alloc(length + 128);
    const bytes = new Uint8Array(m.exports.memory.buffer, base, length + 128);
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
    return base + offset;
  }

  const cases = OFFSETS.flatMap((offset) => LENGTHS.map((length) => [length, offset] as const));
  test.each(cases)("length %i at offset %i", (length, offset) => {
    const pointer = putRandomBytes(length, offset, length * 131 + offset);
    const expected = checksumModel(new Uint8Array(m.exports.memory.buffer, pointer, length));

    expect(kernels.readBytesRef(pointer, length)).toBe(expected);
    expect(kernels.readBytes(pointer, length)).toBe(expected);
  });

  test("bytes past the range not read", () => {
    const pointer = putRandomBytes(100, 0, 5);
    const before = kernels.readBytes(pointer, 100);
    new Uint8Array(m.exports.memory.buffer, pointer + 100, 28).fill(0xa5);
    new Uint8Array(m.exports.memory.buffer, pointer - 28, 28).fill(0x5a);

    expect(kernels.readBytes(pointer, 100)).toBe(before);
  });

  // Changing one byte changes the checksum wherever the byte sits: in the 64-byte loop, the
  // 16-byte loop or the scalar tail.
  test.each([0, 7, 63, 64, 70, 80, 95, 96, 99])("changed byte %i", (index) => {
    const pointer = putRandomBytes(100, 0, 11);
    const before = kernels.readBytes(pointer, 100);
    const bytes = new Uint8Array(m.exports.memory.buffer, pointer, 100);
    bytes[index] ^= 0x10;

    expect(kernels.readBytes(pointer, 100)).not.toBe(before);
    expect(kernels.readBytes(pointer, 100)).toBe(kernels.readBytesRef(pointer, 100));
  });

  test("sum wraps at 2^32", () => {
    // 2^20 bytes of 0xff are 2^18 words of 0xffffffff: their sum is 2^18 · (2^32 − 1) ≡ −2^18
    const length = 1 << 20;
    const pointer = m.alloc(length);
    new Uint8Array(m.exports.memory.buffer, pointer, length).fill(0xff);

    expect(kernels.readBytesRef(pointer, length)).toBe(-(1 << 18));
    expect(kernels.readBytes(pointer, length)).toBe(-(1 << 18));
    expect(kernels.readBytes(pointer, length - 13)).toBe(kernels.readBytesRef(pointer, length - 13));
  });

  test("negative length reads nothing", () => {
    const pointer = putRandomBytes(64, 0, 3);

    expect(kernels.readBytes(pointer, -1)).toBe(0);
    expect(kernels.readBytesRef(pointer, -1)).toBe(0);
  });
});

describe("readChunks", () => {
  /** Places random bytes and a list of `count` chunk addresses into them, some unaligned, some repeated. */
  function placeChunks(count: number, bytes: number, seed: number): { list: number; expected: number } {
    const random = seededRandom(seed);
    const region = 64 * count + bytes + 64;
    const base = m.alloc(region);
    const data = new Uint8Array(m.exports.memory.buffer, base, region);
    for (let i = 0; i < region; i++) data[i] = Math.floor(random() * 256);
    const list = m.alloc(4 * Math.max(count, 1));
    const addresses = new Uint32Array(m.exports.memory.buffer, list, count);
    let expected = 0;
    for (let k = 0; k < count; k++) {
      const offset = Math.floor(random() * (region - bytes));
      addresses[k] = base + offset;
      expected = (expected + checksumModel(data.subarray(offset, offset + bytes))) | 0;
    }
    return { list, expected };
  }

  const cases = [0, 1, 7].flatMap((count) => [0, 1, 15, 64, 100, 864, 2496].map((bytes) => [count, bytes] as const));
  test.each(cases)("%i chunks of %i bytes", (count, bytes) => {
    const { list, expected } = placeChunks(count, bytes, count * 977 + bytes);

    expect(kernels.readChunksRef(list, count, bytes)).toBe(expected);
    expect(kernels.readChunks(list, count, bytes)).toBe(expected);
  });
});

describe("dotPeak", () => {
  test.each([0, 1, 2, 17, 1000])("%i steps match reference", (steps) => {
    expect(kernels.dotPeak(steps)).toBe(kernels.dotPeakRef(steps));
  });

  test("steps change the sum", () => {
    expect(kernels.dotPeakRef(1000)).not.toBe(kernels.dotPeakRef(999));
  });
});
