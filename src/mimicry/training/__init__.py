"""Fine-tuning (SFT, full and LoRA, assistant-only loss) and the alignment stage.

Torch and transformers are imported inside the functions that need them, so importing this
package stays cheap.
"""
