#include "fcvm/cli/main.hpp"

int main(int argc, char** argv) { return fcvm::cli::main(argc, argv); }
