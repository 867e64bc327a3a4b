import ArgumentParser
struct Init: ParsableCommand {}
struct Import: ParsableCommand {}
struct Card: ParsableCommand {}
struct List: ParsableCommand {}
