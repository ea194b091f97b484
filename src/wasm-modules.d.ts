/** A .wasm file imported by the single-file entry: esbuild's base64 loader turns it into its bytes as base64 text. */
declare module "*.wasm" {
  const base64: string;
  export default base64;
}
