import ArgumentParser
import Foundation
import Registry

struct Login: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Save a token for a daemon, so later commands against it need no --token.",
        discussion: """
        Checks the token with the daemon first (a token it refuses is not saved), then keeps \
        it in <data-dir>/credentials.json, readable by you alone, under the endpoint's URL. \
        $HUB_TOKEN and --token still take precedence. hubctl login --logout forgets it. \
        Create a token on the daemon's machine with hubctl token create.

        Examples:
          hubctl login --endpoint http://hub.internal:8080 --token hub_…
          echo "$TOKEN" | hubctl login --endpoint http://hub.internal:8080
        """
    )
    @Flag(help: "Forget the endpoint's saved token instead.") var logout = false
    @OptionGroup var remote: EndpointOptions

    func run() throws {
        let endpoint = remote.resolvedEndpoint
        let credentials = CredentialStore(dataDirectory: remote.dataDirectory)
        if logout {
            let removed = try credentials.remove(for: endpoint)
            print(removed ? "forgot the token for \(endpoint)" : "no token was saved for \(endpoint)")
            return
        }
        var token = remote.token
        if token == nil, isatty(STDIN_FILENO) == 0 {
            token = readLine()?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard let token, !token.isEmpty else {
            throw ValidationError("give the token with --token, or on standard input")
        }
        let identity = try HubClient(endpoint: endpoint, token: token).whoami()
        try credentials.save(token, for: endpoint)
        print("logged in to \(endpoint) as \(identity.user) (\(identity.scope) scope); token saved in \(credentials.file.path)")
    }
}

struct Whoami: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which user and scope the daemon sees for the token hubctl would send.",
        discussion: """
        Exit status: 0 the daemon accepted the token; 1 it did not (or there is none).

        Example:
          hubctl whoami --endpoint http://hub.internal:8080 --json
        """
    )
    @Flag(help: "Print {endpoint, user, scope, label} as JSON.") var json = false
    @OptionGroup var remote: EndpointOptions

    func run() throws {
        let client = remote.client()
        guard client.token != nil else {
            throw ValidationError("no token for \(client.endpoint): run hubctl login, or set $HUB_TOKEN")
        }
        let identity = try client.whoami()
        if json {
            print(try Output.json(["endpoint": client.endpoint, "user": identity.user, "scope": identity.scope, "label": identity.label]))
        } else {
            print("\(identity.user) on \(client.endpoint) (\(identity.scope) scope, token '\(identity.label)')")
        }
    }
}

struct Completions: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a shell completion script for hubctl.",
        discussion: """
        Examples:
          hubctl completions bash > /etc/bash_completion.d/hubctl
          hubctl completions zsh > "${fpath[1]}/_hubctl"
          hubctl completions fish > ~/.config/fish/completions/hubctl.fish
        """
    )
    @Argument(help: "bash, zsh or fish.") var shell: String

    func run() throws {
        guard let kind = CompletionShell(rawValue: shell) else {
            throw ValidationError("unknown shell '\(shell)': use bash, zsh or fish")
        }
        print(Hubctl.completionScript(for: kind))
    }
}
