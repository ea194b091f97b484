import { configDefaults, defineConfig } from "vitest/config";

// V8 flags for the relaxed-SIMD kernel tests. They cannot go through NODE_OPTIONS, so they go to the
// forked worker's command line. Node 20 needs the experimental flag to accept relaxed SIMD at all,
// and --no-liftoff because its baseline compiler computes i32x4.relaxed_dot_i8x16_i7x16_add_s wrongly.
const nodeMajor = Number(process.versions.node.split(".")[0]);
const relaxedSimdArgs = nodeMajor < 22 ? ["--experimental-wasm-relaxed-simd", "--no-liftoff"] : [];
const relaxedTests = ["test/kernels-relaxed.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Both projects inherit the options above. Each sets its own include, because `extends` would
    // append a root include to the relaxed project's.
    projects: [
      {
        extends: true,
        test: {
          name: "default",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, ...relaxedTests],
        },
      },
      {
        extends: true,
        test: { name: "relaxed", include: relaxedTests, execArgv: relaxedSimdArgs },
      },
    ],
  },
});
