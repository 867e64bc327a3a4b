import ArgumentParser

@main
struct Hubctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hubctl",
        abstract: "Compression Hub: version, compress, evaluate and serve compressed language models.",
        discussion: """
        A registry of base and compressed checkpoints with their lineage and measured metrics, \
        kept in a data directory ($HUB_HOME, default ~/.compression-hub) on SQLite and a \
        content-addressed blob store.

        Start here:
          hubctl import \\
              ~/.cache/compression-hub/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
              smollm2/SmolLM2-135M-Instruct
          hubctl card smollm2/SmolLM2-135M-Instruct

        Conventions: commands that read take --json. Commands that talk to a daemon find it \
        with --endpoint, else $HUB_ENDPOINT, else $HF_ENDPOINT, and send --token, else \
        $HUB_TOKEN, else $HF_TOKEN, else what hubctl login saved. hubctl completions prints \
        shell completion scripts.

        Exit status: 0 success; 1 an error (the message says what to do next); 3 hubctl pull \
        found nothing that fits; 4 hubctl lineage --audit found a mismatch; 64 bad usage; \
        130 interrupted (hubctl finetune leaves a checkpoint to resume).
        """,
        subcommands: [Init.self, Import.self, Card.self, List.self, Convert.self, ExportGGUF.self, Inspect.self, Tokenize.self, Run.self, Eval.self, Compress.self, Quantize.self, Finetune.self, Corpus.self, Register.self, Build.self, Stage.self, LawsCommand.self, Lineage.self, Serve.self, Push.self, Pull.self, Mirror.self, Export.self, Tag.self, Token.self, Login.self, Whoami.self,
                      Fsck.self, GC.self, Schema.self, Completions.self]
    )
}
