// Native llama.cpp through node-llama-cpp's prebuilt CPU binaries: one model, one context per
// thread count, greedy decode timed like dormant's.

import { getLlama } from "node-llama-cpp";

let llama;

/** Resolves to the shared Llama instance: CPU only, prebuilt binaries, no build or download. */
export async function nativeLlama() {
  // maxThreads 0 makes each context's thread count exact instead of a hint.
  llama ??= await getLlama({ gpu: false, build: "never", skipDownload: true, maxThreads: 0, logLevel: "error" });
  return llama;
}

/** Returns the binary's llama.cpp release, build type and CPU features. */
export async function nativeInfo() {
  const instance = await nativeLlama();
  return { llamaCpp: instance.llamaCppRelease.release, buildType: instance.buildType, systemInfo: instance.systemInfo.trim() };
}

/**
 * Loads a GGUF and resolves to { tokenize(text), open(threads), dispose() }. `open` makes an
 * engine { run(), dispose() } whose run generates `tokens` greedy tokens after `prompt`.
 */
export async function loadNative(modelFile, { contextLength, prompt, tokens }) {
  const model = await (await nativeLlama()).loadModel({ modelPath: modelFile });
  return {
    tokenize: (text) => [model.tokens.bos, ...model.tokenize(text)],
    open: async (threads) => {
      const context = await model.createContext({ contextSize: contextLength, threads: { ideal: threads, min: threads }, sequences: 1 });
      const sequence = context.getSequence();
      return {
        run: async () => {
          await sequence.clearHistory();
          const generated = [];
          let first = 0;
          let last = 0;
          for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
            last = performance.now();
            if (generated.length === 0) first = last;
            generated.push(token);
            if (generated.length === tokens) break;
          }
          return { tokensPerSecond: ((generated.length - 1) * 1000) / (last - first), generated };
        },
        dispose: () => context.dispose(),
      };
    },
    dispose: () => model.dispose(),
  };
}
