from sheetprop.cli import main

main()
