from starforge_daemon.cli.main import main

main(prog_name="starforge")
