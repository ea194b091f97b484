// Plain memory read: the bandwidth bound that bench/kernel-hosts.mjs sets beside matvecQ8.
//
// readBytes loads every byte once and does one i32x4.add per 16 bytes, so its speed is the rate at
// which the engine can stream memory into v128 registers. It returns a checksum so that the engine
// cannot drop the loads:
//
//   checksum = Σ_i bytes[i] << (8 · (i mod 4))   (mod 2^32, as i32)
//
// That is the wrapping sum of the little-endian u32 words of the range, counted from pointer, with
// the last word zero-padded when bytes is not a multiple of 4. The SIMD loop sums whole 16-byte
// chunks. The tail past the last multiple of 16 (0 to 15 bytes) is read byte by byte and adds the
// same terms, so every byte of the range is read and counted.

/** Returns the checksum above for bytes bytes at pointer. Scalar reference for readBytes. */
export function readBytesRef(pointer: usize, bytes: i32): i32 {
  let sum: u32 = 0;
  for (let i = 0; i < bytes; i++) {
    sum += <u32>load<u8>(pointer + <usize>i) << ((<u32>i & 3) << 3);
  }
  return <i32>sum;
}

/**
 * Reads bytes bytes at pointer with v128 loads and returns the same checksum as readBytesRef.
 * Accepts any alignment. A negative length reads nothing and returns 0.
 */
export function readBytes(pointer: usize, bytes: i32): i32 {
  const length = <usize>max(bytes, 0);
  const end64 = pointer + (length & ~<usize>63);
  const end16 = pointer + (length & ~<usize>15);
  const end = pointer + length;

  // four independent accumulators: the adds of one 64-byte step do not wait for each other
  let acc0_i32 = i32x4.splat(0);
  let acc1_i32 = i32x4.splat(0);
  let acc2_i32 = i32x4.splat(0);
  let acc3_i32 = i32x4.splat(0);
  let p = pointer;
  while (p < end64) {
    acc0_i32 = i32x4.add(acc0_i32, v128.load(p));
    acc1_i32 = i32x4.add(acc1_i32, v128.load(p, 16));
    acc2_i32 = i32x4.add(acc2_i32, v128.load(p, 32));
    acc3_i32 = i32x4.add(acc3_i32, v128.load(p, 48));
    p += 64;
  }
  while (p < end16) {
    acc0_i32 = i32x4.add(acc0_i32, v128.load(p));
    p += 16;
  }
  const acc_i32 = i32x4.add(i32x4.add(acc0_i32, acc1_i32), i32x4.add(acc2_i32, acc3_i32));
  let sum = <u32>(
    i32x4.extract_lane(acc_i32, 0) + i32x4.extract_lane(acc_i32, 1) +
    i32x4.extract_lane(acc_i32, 2) + i32x4.extract_lane(acc_i32, 3)
  );

  // scalar tail: p - pointer is a multiple of 16, so byte p + k sits at shift 8 · (k mod 4)
  for (let k: u32 = 0; p < end; k++, p++) {
    sum += <u32>load<u8>(p) << ((k & 3) << 3);
  }
  return <i32>sum;
}

// readChunks reads only some chunks of a region, as a sparse FFN reads only the rows of its kept
// neurons: chunk k is `bytes` bytes at the address stored as u32 at list + 4k. bench/scattered.mjs
// times it against readBytes over the whole region. It does nothing with the bytes but add them,
// so a kernel that reads the same chunks cannot take less time.

/** Returns the wrapping sum of readBytesRef over the chunks. Scalar reference for readChunks. */
export function readChunksRef(list: usize, count: i32, bytes: i32): i32 {
  let sum: i32 = 0;
  for (let k = 0; k < count; k++) sum += readBytesRef(<usize>load<u32>(list + (<usize>k << 2)), bytes);
  return sum;
}

/** Returns the same sum as readChunksRef, reading each chunk with readBytes. */
export function readChunks(list: usize, count: i32, bytes: i32): i32 {
  let sum: i32 = 0;
  for (let k = 0; k < count; k++) sum += readBytes(<usize>load<u32>(list + (<usize>k << 2)), bytes);
  return sum;
}
