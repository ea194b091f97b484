/**
 * Shapes shared between the file readers, the tokenizer and the model. Tensor names and
 * metadata keys follow GGUF (`token_embd.weight`, `blk.N.attn_q.weight`, ...), whatever
 * format a model came from, so the model code reads one vocabulary.
 */

/** Hyperparameters of a Llama-style decoder, in the spelling of llama2.c's Config. */
export interface LlamaConfig {
  /** GGUF `general.architecture`: "llama" or "qwen2". */
  architecture: string;
  dim: number;
  hidden_dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  vocab_size: number;
  seq_len: number;
  /** RMSNorm epsilon. */
  norm_eps: number;
  /** RoPE base frequency. */
  rope_theta: number;
  /** FFN activation; SwiGLU models use "silu". */
  activation: "silu" | "relu" | "gelu";
  /** Whether the FFN is gated, act(gate x) · up x (true when ffn_gate tensors exist; default true). */
  gated?: boolean;
  /** RoPE pairing: "norm" rotates adjacent pairs (llama, llama2.c), "neox" the halves of a head (qwen2). Default "norm". */
  rope_type?: "norm" | "neox";
  /** Linear RoPE scaling factor: positions are divided by it (GGUF `ARCH.rope.scaling.factor`). Default 1. */
  rope_scaling_factor?: number;
}

/** GGML tensor types that the readers understand. Values are GGML's own type ids. */
export enum GGMLType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14,
  BF16 = 30,
}

/** One tensor as stored in a file: raw bytes plus GGUF-order dims (dims[0] is the row length). */
export interface TensorData {
  name: string;
  /** GGUF order: dims[0] = elements per row (ne0), dims[1] = rows, ... */
  dims: number[];
  type: GGMLType;
  /** Raw bytes of the tensor in its stored type, a view into the file buffer where possible. */
  data: Uint8Array;
}

/** GGUF token types (llama.cpp's llama_token_type). */
export enum TokenType {
  UNDEFINED = 0,
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

/**
 * A vocabulary in GGUF form. SentencePiece pieces ("llama") use "▁" (U+2581) for spaces and
 * spell byte-fallback pieces "<0xAB>". Byte-level BPE pieces ("gpt2") spell bytes in GPT-2's
 * byte-to-unicode alphabet ("Ġ" is a space) and come with ranked merges.
 */
export interface Vocab {
  /** GGUF `tokenizer.ggml.model`: "llama" for SentencePiece BPE, "gpt2" for byte-level BPE. */
  model: string;
  tokens: string[];
  scores: Float32Array;
  types: Int32Array;
  bos_id: number;
  eos_id: number;
  /** Unknown-token id; -1 when a byte-level BPE vocabulary has none. */
  unk_id: number;
  /** Whether encode() prepends BOS by default (GGUF `tokenizer.ggml.add_bos_token`). */
  add_bos: boolean;
  /** Whether encode() adds the SentencePiece dummy-prefix space to non-empty text. */
  add_space_prefix: boolean;
  /** Whether encode() appends EOS by default (GGUF `tokenizer.ggml.add_eos_token`; default false). */
  add_eos?: boolean;
  /** GGUF `tokenizer.ggml.merges` of a "gpt2" vocabulary: "left right" pairs, index = rank. */
  merges?: string[];
  /** GGUF `tokenizer.ggml.pre`: the pre-tokenizer of a "gpt2" vocabulary ("llama-bpe", "qwen2", ...). */
  pre?: string;
  /** GGUF `tokenizer.ggml.eot_token_id`: end of turn in chat models. */
  eot_id?: number;
  /**
   * Whether special tokens swallow the spaces after them. llama.cpp sets this for Phi-3, which
   * it recognizes by `general.name`, for all special tokens but <unk>, <s> and <|endoftext|>.
   */
  special_rstrip?: boolean;
}

/** A model file after parsing: config, tensors by GGUF name, vocabulary, and format facts. */
export interface ModelFile {
  /** Path or URL the bytes came from, for error messages. */
  source: string;
  format: "gguf" | "llama2c";
  config: LlamaConfig;
  tensors: Map<string, TensorData>;
  /** Absent when a llama2.c checkpoint was loaded without a tokenizer.bin. */
  vocab?: Vocab;
  /** GGUF metadata as read (empty for llama2.c files). */
  metadata: Map<string, unknown>;
  /** Calibrated sparsity data read from the file's `dormant.sparsity` section, when present. */
  sparsity?: {
    rank: number;
    thresholds: Float32Array;
    cutoffs: Float32Array;
    predictorDown: Float32Array[];
    predictorUp: Float32Array[];
  };
}
