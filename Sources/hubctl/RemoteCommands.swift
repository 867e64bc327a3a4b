import ArgumentParser
import Foundation
import HubCore
import Registry

/// Where the daemon is and which token to present.
struct EndpointOptions: ParsableArguments {
    @Option(help: "The daemon's URL (default: $HUB_ENDPOINT, else $HF_ENDPOINT, else http://127.0.0.1:8080).")
    var endpoint: String?
    @Option(help: """
        A bearer token (default: $HUB_TOKEN, else $HF_TOKEN, else the token hubctl login saved for the \
        endpoint, else the admin token a local daemon wrote in its data directory).
        """)
    var token: String?
    @OptionGroup var data: DataDirectoryOption

    static func environment(_ names: String...) -> String? {
        let environment = ProcessInfo.processInfo.environment
        return names.lazy.compactMap { environment[$0].flatMap { $0.isEmpty ? nil : $0 } }.first
    }

    var resolvedEndpoint: String {
        endpoint ?? Self.environment("HUB_ENDPOINT", "HF_ENDPOINT") ?? "http://127.0.0.1:8080"
    }

    var dataDirectory: URL { data.url }

    func client() -> HubClient {
        let endpoint = resolvedEndpoint
        let token = token ?? Self.environment("HUB_TOKEN", "HF_TOKEN")
            ?? CredentialStore(dataDirectory: dataDirectory).token(for: endpoint) ?? AdminTokenFile.read(in: dataDirectory)
        return HubClient(endpoint: endpoint, token: token)
    }
}

struct Push: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Push a directory to a registry daemon as one new revision.",
        discussion: """
        Hashes every file, uploads the blobs the daemon does not have yet in resumable chunks \
        (run the same command again after an interruption and it continues where it stopped), \
        then commits them all at once: the revision appears whole or not at all. A directory \
        with config.json and model.safetensors is registered as a model variant; pass --parent \
        for a compressed variant (its recipe.json must name the parent's exact weights).

        Examples:
          hubctl push ./slice30 team/SmolLM2-slice30 \\
              --parent smollm2/SmolLM2-135M-Instruct -m "SliceGPT 30%"
          HUB_ENDPOINT=http://hub.internal:8080 HUB_TOKEN=hub_… \\
              hubctl push ./model team/model --private
        """
    )
    @Argument(help: "The directory to push.") var directory: String
    @Argument(help: "The repository, as namespace/name.") var repository: String
    @Option(name: [.short, .long], help: "The revision's message.") var message: String?
    @Option(help: "The branch to commit to.") var branch = "main"
    @Option(help: "Commit only if the branch is still at this revision.") var expectParent: String?
    @Option(help: "For a compressed variant: the model it was made from, namespace/name[@revision].") var parent: String?
    @Flag(help: "Create the repository as private (visible only with a token).") var `private` = false
    @OptionGroup var remote: EndpointOptions

    func run() throws {
        let name = try RepositoryName(repository)
        var options = HubClient.PushOptions()
        options.message = message
        options.branch = branch
        options.parentCommit = expectParent
        options.isPrivate = `private`
        options.lineageParent = parent
        let result = try remote.client().push(directory: URL(fileURLWithPath: directory), to: name, options: options) { path, done, total in
            Output.transfer(path, done: done, total: total)
        }
        Output.progress("\nsent \(Output.bytes(result.sentBytes)) of \(Output.bytes(result.totalBytes)) in \(result.files) files")
        print("pushed \(name) at revision \(result.revision)")
    }
}

struct Mirror: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mirror a repository from a Hugging Face compatible hub into the local registry.",
        discussion: """
        Downloads every file of the revision (resuming partial files, retrying with back-off), \
        checks each against the upstream's hash and size, and commits them as one revision \
        whose source records the endpoint, repository and upstream revision. Mirroring the same \
        upstream revision again is a no-op.

        Examples:
          hubctl mirror http://hub.internal:8080 smollm2/SmolLM2-135M-Instruct
          hubctl mirror http://hub.internal:8080 team/model@v1 --as mirror/model
        """
    )
    @Argument(help: "The upstream hub's URL.") var upstream: String
    @Argument(help: "namespace/name, optionally @revision (default main).") var repository: String
    @Option(name: .customLong("as"), help: "The local repository (default: the same name).") var local: String?
    @Option(help: "A token for the upstream (default: $HUB_TOKEN, else $HF_TOKEN).") var token: String?
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let parts = repository.split(separator: "@", maxSplits: 1).map(String.init)
        let name = try RepositoryName(parts[0])
        let client = HubClient(endpoint: upstream, token: token ?? EndpointOptions.environment("HUB_TOKEN", "HF_TOKEN"))
        let result = try UpstreamMirror(registry: data.open(), client: client).mirror(
            name, revision: parts.count > 1 ? parts[1] : "main", as: try local.map { try RepositoryName($0) }, author: NSUserName()
        ) { path, done, total in Output.transfer(path, done: done, total: total) }
        if result.alreadyMirrored {
            print("\(local ?? parts[0]) already mirrors \(name)@\(result.upstreamRevision) at revision \(result.revision.id)")
        } else {
            Output.progress("\ndownloaded \(Output.bytes(result.downloadedBytes)) for \(result.files) files")
            print("mirrored \(name)@\(result.upstreamRevision) as \(local ?? parts[0]) at revision \(result.revision.id)")
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a revision as a bundle: files, a manifest with hashes, lineage and metrics.",
        discussion: """
        The bundle is a zstd-compressed tar holding manifest.json and files/<path>; hubctl import \
        on another registry restores it, checking every file against the manifest.

        Example:
          hubctl export smollm2/SmolLM2-135M-Instruct@main -o smollm2.hub.tar.zst
        """
    )
    @Argument(help: "namespace/name, optionally @revision (default main).") var repository: String
    @Option(name: [.short, .long], help: "The bundle to write (must not exist).") var output: String
    @OptionGroup var data: DataDirectoryOption

    func run() throws {
        let parts = repository.split(separator: "@", maxSplits: 1).map(String.init)
        let manifest = try BundleExporter(registry: data.open()).export(
            RepositoryName(parts[0]), revision: parts.count > 1 ? parts[1] : "main", to: URL(fileURLWithPath: output))
        print("exported \(manifest.repository)@\(manifest.revision.id) (\(manifest.files.count) files) to \(output)")
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the daemon's bearer tokens.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every token (never their secrets); needs an admin token.")
        @Flag(help: "Print the tokens as JSON.") var json = false
        @OptionGroup var remote: EndpointOptions

        func run() throws {
            let tokens = try remote.client().tokens()
            if json { return print(try Output.json(tokens)) }
            for token in tokens {
                let state = token.revokedAt.map { "revoked \($0)" } ?? "live"
                print("\(token.id)\t\(token.scope.rawValue)\t\(token.user)\t\(token.label)\t\(token.createdAt)\t\(state)")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a token by its id (see hubctl token list); needs an admin token. Takes effect at once.")
        @Argument(help: "The token's id.") var id: Int
        @OptionGroup var remote: EndpointOptions

        func run() throws {
            try remote.client().revokeToken(id: id)
            print("revoked token \(id)")
        }
    }

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token (needs an admin token). The secret is shown once; the daemon keeps only its hash.",
            discussion: """
            Scopes: read (private repositories), write (also upload, commit, tag, record \
            metrics), admin (also create tokens).

            Example:
              hubctl token create --scope write --user ci --label "nightly builds"
            """
        )
        @Option(help: "read, write or admin.") var scope: TokenScope
        @Option(help: "Who the token is for (default: the admin's own user).") var user: String?
        @Option(help: "What the token is for.") var label: String?
        @OptionGroup var remote: EndpointOptions

        func run() throws {
            print(try remote.client().createToken(user: user, label: label, scope: scope))
        }
    }
}

extension TokenScope: ExpressibleByArgument {}

struct Tag: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tag a revision on a registry daemon. Tags never move.",
        discussion: """
        Example:
          hubctl tag smollm2/SmolLM2-135M-Instruct@main v1
        """
    )
    @Argument(help: "namespace/name, optionally @revision (default main).") var repository: String
    @Argument(help: "The tag.") var tag: String
    @OptionGroup var remote: EndpointOptions

    func run() throws {
        let parts = repository.split(separator: "@", maxSplits: 1).map(String.init)
        let revision = try remote.client().tag(RepositoryName(parts[0]), revision: parts.count > 1 ? parts[1] : "main", as: tag)
        print("tagged \(parts[0])@\(revision) as \(tag)")
    }
}
