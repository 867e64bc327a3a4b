import ArgumentParser
import Foundation
import Builds
import HubCore
import Registry
import Transformer

/// The data directory option every registry command takes.
struct DataDirectoryOption: ParsableArguments {
    @Option(name: .long, help: "The registry's data directory (default: $HUB_HOME, else ~/.compression-hub).")
    var dataDir: String?

    /// --data-dir, else $HUB_HOME, else ~/.compression-hub.
    var url: URL { dataDir.map { URL(fileURLWithPath: $0) } ?? HubRegistry.defaultDataDirectory }

    func open() throws -> HubRegistry {
        try HubRegistry(dataDirectory: url)
    }
}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create (or migrate) a registry data directory.",
        discussion: """
        Creates registry.sqlite (SQLite, WAL) with the current schema and the blob store. Safe to \
        run again: an existing registry is only migrated forward.

        Example:
          hubctl init --data-dir ./hub
        """
    )
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let registry = try data.open()
        print("registry ready in \(registry.dataDirectory.path)")
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a GGUF checkpoint as a base model, or a bundle hubctl export wrote.",
        discussion: """
        A GGUF file is converted to an fp32 Hugging Face checkpoint, stored content-addressed and \
        committed as a new revision with a variant record (architecture, parameter counts, size) \
        and the source file's sha256. Importing the same file again is a no-op that prints the \
        existing revision. With --keep-blocks, matrices stored as Q8_0 or Q4_0 stay those very \
        blocks, which the runtime decodes from (other types still become fp32): a quantized \
        model without a float copy, as hubctl quantize would write it.

        A bundle is checked entry by entry against its manifest (no absolute paths, no '..', no \
        links, sizes and sha256 as listed) before anything is committed; its lineage is restored \
        when the parent revision is in this registry, and its metrics records come along.

        Examples:
          hubctl import \\
              ~/.cache/compression-hub/models/SmolLM2-135M-Instruct.Q4_1.gguf \\
              smollm2/SmolLM2-135M-Instruct
          hubctl import smollm2.hub.tar.zst
        """
    )
    @Argument(help: "The GGUF file or bundle.") var file: String
    @Argument(help: "The repository, as namespace/name (required for GGUF; for a bundle, default: the one it was exported from).")
    var repository: String?
    @Option(help: "Author recorded on the revision (default: $USER).") var author: String?
    @Flag(help: "Keep a GGUF's Q8_0 and Q4_0 matrices as blocks instead of converting them to fp32.") var keepBlocks = false
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let url = URL(fileURLWithPath: file)
        let registry = try data.open()
        let name = try repository.map { try RepositoryName($0) }
        let magic = (try? FileHandle(forReadingFrom: url).read(upToCount: 4)) ?? nil
        guard magic == Data("GGUF".utf8) else {
            let result = try BundleImporter(registry: registry).importBundle(at: url, as: name, author: author ?? NSUserName())
            let lineage = result.lineageRestored ? "" : " (its parent \(result.manifest.lineage?.parentRevisionID ?? "?") is not in this registry; lineage kept in the source record)"
            print("imported \(result.revision.repository) at revision \(result.revision.id) from \(file)\(lineage)")
            return
        }
        guard let name else { throw ValidationError("importing a GGUF file needs the repository to create, as namespace/name") }
        let result = try BaseModelImporter(registry: registry).importGGUF(
            at: url, as: name,
            author: author ?? NSUserName(), keepBlocks: keepBlocks
        ) { step, done, total in Output.bar(step, done: done, total: total) }
        print(result.alreadyImported
            ? "\(name) already holds this file at revision \(result.revision.id)"
            : "imported \(name) at revision \(result.revision.id)")
    }
}

struct Card: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a model's card: identity, shape, parameters, files, source and lineage.",
        discussion: """
        Example:
          hubctl card smollm2/SmolLM2-135M-Instruct
          hubctl card smollm2/SmolLM2-135M-Instruct@main --json
        """
    )
    @Argument(help: "namespace/name, optionally @revision (a branch, tag or revision id; default main).")
    var model: String
    @Flag(help: "Print the card as JSON (schemas/model-card.schema.json).") var json = false
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let parts = model.split(separator: "@", maxSplits: 1).map(String.init)
        let card = try data.open().card(try RepositoryName(parts[0]), revision: parts.count > 1 ? parts[1] : "main")
        print(json ? try Output.json(card) : CardRenderer.text(card))
    }
}

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the repositories in the registry.",
        discussion: "One line per repository: name, main's revision, when it was committed, and whether it is private.")
    @Flag(help: "Print [{repository, revision, created_at, private}] as JSON.") var json = false
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let registry = try data.open()
        var rows: [ListedRepository] = []
        for repository in try registry.store.repositories() {
            let main = try registry.store.resolve(repository.name, revision: "main")
            rows.append(ListedRepository(repository: repository.name.description, revision: main?.id, createdAt: main?.createdAt,
                                         isPrivate: repository.isPrivate))
            if !json { print("\(repository.name)\t\(main?.id ?? "-")\t\(main?.createdAt ?? "")\(repository.isPrivate ? "\tprivate" : "")") }
        }
        if json { print(try Output.json(rows)) }
    }
}

enum CardRenderer {
    static func text(_ card: ModelCard) -> String {
        var lines: [String] = []
        lines.append("\(card.repository) @ \(card.revision)")
        lines.append("  \(card.kind) \(card.architecture) model, committed \(card.createdAt) by \(card.author)")
        lines.append("  \(card.message)")
        let p = card.parameters
        lines.append("parameters   \(grouped(p.total)) total = \(grouped(p.embedding)) embedding + \(grouped(p.nonEmbedding)) non-embedding")
        lines.append("size         \(Output.bytes(card.bytes)) in \(card.files.count) files")
        if let s = card.shape {
            let upTo = s.heterogeneous ? "up to " : ""
            lines.append("shape        \(s.layers) \(s.heterogeneous ? "heterogeneous " : "")layers, hidden \(upTo)\(s.hiddenSize), FFN \(upTo)\(s.intermediateSize), \(upTo)\(s.attentionHeads) heads / \(s.keyValueHeads) KV heads")
            lines.append("             vocabulary \(s.vocabularySize), context \(s.contextLength), \(s.tiedEmbeddings ? "tied" : "untied") embeddings")
        }
        if let source = card.source {
            let format = source["format"]?.stringValue ?? "?"
            switch format {
            case "mirror":
                lines.append("source       mirror of \(source["repository"]?.stringValue ?? "?") from \(source["endpoint"]?.stringValue ?? "?")")
                lines.append("             upstream revision \(source["revision"]?.stringValue ?? "?")")
            case "bundle":
                lines.append("source       bundle \(source["file"]?.stringValue ?? "?") of \(source["repository"]?.stringValue ?? "?")")
                lines.append("             original revision \(source["revision"]?.stringValue ?? "?")")
            default:
                lines.append("source       \(format) file \(source["file"]?.stringValue ?? "?")")
                lines.append("             sha256 \(source["sha256"]?.stringValue ?? "?")")
            }
        }
        if let lineage = card.lineage {
            let method = lineage.recipe["method"]?.stringValue ?? "?"
            var ratio = ""
            if case .number(let r)? = lineage.recipe["achieved_ratio"] { ratio = String(format: " at r = %.4f", r) }
            lines.append("lineage      \(method)\(ratio) from revision \(lineage.parentRevision)")
        } else {
            lines.append("lineage      none (a base model)")
        }
        for m in card.metrics {
            let loss = m.crossEntropy.map { String(format: "test loss %.4f", $0) } ?? "no loss"
            lines.append("metrics      \(m.suite) suite, \(loss), \(m.cpuModel) × \(m.blasThreads) threads, \(m.createdAt)")
        }
        lines.append("files")
        for file in card.files {
            lines.append("  \(file.path.padding(toLength: 24, withPad: " ", startingAt: 0)) \(Output.bytes(file.size).padding(toLength: 10, withPad: " ", startingAt: 0)) sha256:\(file.sha256.hex)")
        }
        return lines.joined(separator: "\n")
    }

    static func grouped(_ n: Int) -> String {
        let digits = String(n)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return out
    }
}

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a data directory against every invariant the registry promises.",
        discussion: """
        Runs SQLite's integrity and foreign-key checks, re-hashes every blob against its address, \
        checks that every registered blob has its bytes at the registered size, that no revision \
        names a missing blob, and that no upload in progress holds more than it announced. Exits \
        with status 1 and lists every problem if any is found. Safe while the daemon runs (it only \
        reads), though a commit in flight may then show up in the next run.

        Example:
          hubctl fsck --data-dir ./hub
        """
    )
    @Flag(help: "Compare blob sizes only; do not re-read their bytes.") var quick = false
    @Flag(help: "Print {clean, problems, revisions, blobs_verified, bytes_verified, uploads_in_progress} as JSON.") var json = false
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let report = try RegistryCheck(registry: data.open()).run(rehash: !quick)
        if json {
            print(try Output.json(FsckReport(clean: report.isClean, problems: report.problems, revisions: report.revisions,
                                             blobsVerified: report.blobsVerified, bytesVerified: report.bytesVerified,
                                             uploadsInProgress: report.uploadsInProgress)))
            if !report.isClean { throw ExitCode(1) }
            return
        }
        for problem in report.problems { print("problem: \(problem)") }
        let hashed = quick ? "sizes checked" : "\(report.blobsVerified) blobs (\(Output.bytes(report.bytesVerified))) re-hashed"
        print("\(report.isClean ? "clean" : "\(report.problems.count) problems"): \(report.revisions) revisions, \(hashed), \(report.uploadsInProgress) uploads in progress")
        if !report.isClean { throw ExitCode(1) }
    }
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Reclaim blobs no revision uses and uploads abandoned part-way.",
        discussion: """
        Removes registered blobs that no revision references (left by commits that failed or \
        never came), blob files nothing registered, and unfinished uploads, all only when older \
        than the grace period, so that work in flight is never touched. Revisions and their \
        files are never removed.

        Example:
          hubctl gc --dry-run
          hubctl gc --grace-hours 1
        """
    )
    @Option(help: "Only reclaim what is older than this many hours.") var graceHours: Double = 24
    @Flag(help: "Report what would be reclaimed; change nothing.") var dryRun = false
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let report = try GarbageCollector(registry: data.open()).run(grace: graceHours * 3600, dryRun: dryRun)
        print("\(dryRun ? "would reclaim" : "reclaimed") \(report.blobs) blobs (\(Output.bytes(report.bytes))) and \(report.uploads) unfinished uploads")
    }
}

struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the registry's SQL schema (what schemas/registry.sql holds).")

    func run() throws {
        print(try RegistryMigrations.currentSchemaSQL(), terminator: "")
    }
}

struct Register: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register a compressed variant with its lineage.",
        discussion: """
        Commits a directory that hubctl compress wrote as a new revision of a repository, with a \
        lineage edge to the revision it was made from that carries its recipe. The recipe must \
        name the parent's exact weights (sha256), or nothing is registered.

        Example:
          hubctl compress smollm2/SmolLM2-135M-Instruct --method slicegpt \\
              --ratio 0.3 -o slice30
          hubctl register slice30 smollm2/SmolLM2-135M-slice30 \\
              --parent smollm2/SmolLM2-135M-Instruct
        """
    )
    @Argument(help: "The variant's directory.") var directory: String
    @Argument(help: "The repository to commit it to, as namespace/name.") var repository: String
    @Option(help: "The model it was made from: namespace/name[@revision].") var parent: String
    @Option(help: "Author recorded on the revision (default: the current user).") var author: String?
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let parts = parent.split(separator: "@", maxSplits: 1).map(String.init)
        let revision = try data.open().registerVariant(
            directory: URL(fileURLWithPath: directory), as: RepositoryName(repository), parent: RepositoryName(parts[0]),
            parentRevision: parts.count > 1 ? parts[1] : "main", author: author ?? NSUserName())
        print("registered \(repository) at revision \(revision.id)")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the registry daemon: the Hugging Face Hub download protocol plus the write API.",
        discussion: """
        Unmodified Hugging Face clients download from it:
          HF_ENDPOINT=http://127.0.0.1:8080 python3 -c \\
            "from huggingface_hub import snapshot_download as get; \\
                print(get('smollm2/SmolLM2-135M-Instruct'))"

        Reads: model info (/api/models/{repo}[/revision/{rev}]), trees \
        (/api/models/{repo}/tree/{rev}[/{path}], paged with Link headers), files \
        (/{repo}/resolve/{rev}/{path}, with HEAD, ETag, X-Repo-Commit and byte ranges), cards \
        with lineage and metrics (/api/models/{repo}/card[/{rev}]) and a listing (/api/models). \
        Private repositories are visible only with a token.

        Writes need 'Authorization: Bearer <token>': resumable uploads (/api/uploads), atomic \
        commits, tags and metrics records; creating tokens needs the admin scope. On its first \
        start the daemon writes an admin token to <data-dir>/admin.token (mode 0600), which \
        hubctl push on this machine uses when neither --token nor $HUB_TOKEN is given.

        Uploads interrupted by a crash resume where they stopped; partial files that were never \
        committed are cleared on start.

        Builds (hubctl build submit) are queued in the registry's database and run by \
        --build-workers threads, each stage in a child hubctl (hubctl stage run) so that a \
        crashing stage cannot take the daemon down. A build the daemon was running when it \
        died is queued again on the next start and resumes from its last finished stage.
        """
    )
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one and prints it).") var port = 8080
    @Option(help: "Builds run at once (0: accept no builds).") var buildWorkers = 1
    @Option(help: ArgumentHelp("BLAS threads of compress and fine-tune stages (default: one core fewer than the machine has, at least 1).",
                               discussion: """
        OpenBLAS threads spin while they wait for each other; a stage using every core \
        beside a busy daemon slows by far more than its share and delays the daemon's readers. \
        benchmarks/build_threads.sh measures the trade on this machine. Evaluate stages use \
        every core, so that the latency they record is measured the way the variant will run \
        (hubctl pull compares latencies at equal thread counts).
        """))
    var buildThreads: Int?
    @Option(help: "Builds waiting or running before submissions are refused.") var queueLimit = 32
    @Flag(help: "Run build stages inside the daemon instead of as child processes (cancel then waits for the stage to end).")
    var inProcessStages = false
    @OptionGroup var data: DataDirectoryOption

    static var defaultBuildThreads: Int { max(1, ProcessInfo.processInfo.activeProcessorCount - 1) }

    func run() async throws {
        let registry = try data.open()
        if let tokenFile = try HubServer.prepare(registry) {
            Output.progress("first start: created an admin token in \(tokenFile.path) (readable by you alone)")
        }
        var builds: BuildWorkers?
        if buildWorkers > 0 {
            let cache = try Build.cache(data)
            let threads = buildThreads ?? Self.defaultBuildThreads
            let scheduler: any StageScheduler = inProcessStages
                ? InProcessStages(cache: cache, assetCache: ModelLocator.assetCache)
                : ChildProcessStages(executable: ChildProcessStages.currentExecutable, cache: cache, dataDirectory: registry.dataDirectory,
                                     threads: threads)
            if inProcessStages { BLASThreads.count = threads }
            var settings = BuildWorkers.Settings()
            settings.workers = buildWorkers
            settings.queueLimit = queueLimit
            let workers = BuildWorkers(registry: registry, scheduler: scheduler, cache: cache, settings: settings)
            let requeued = try workers.start()
            if !requeued.isEmpty { Output.progress("re-queued \(requeued.count) interrupted build(s): \(requeued.joined(separator: ", "))") }
            builds = workers
        }
        let host = host
        let application = try HubServer.application(registry: registry, host: host, port: port, builds: builds) { port in
            Output.progress("serving \(registry.dataDirectory.path) on http://\(host):\(port)")
        }
        try await application.runService()
    }
}

struct FsckReport: Encodable {
    let clean: Bool
    let problems: [String]
    let revisions: Int
    let blobsVerified: Int
    let bytesVerified: Int
    let uploadsInProgress: Int

    enum CodingKeys: String, CodingKey {
        case clean, problems, revisions, blobsVerified = "blobs_verified", bytesVerified = "bytes_verified"
        case uploadsInProgress = "uploads_in_progress"
    }
}

struct ListedRepository: Encodable {
    let repository: String
    let revision: String?
    let createdAt: String?
    let isPrivate: Bool

    enum CodingKeys: String, CodingKey { case repository, revision, createdAt = "created_at", isPrivate = "private" }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(repository, forKey: .repository)
        try c.encode(revision, forKey: .revision)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(isPrivate, forKey: .isPrivate)
    }
}
