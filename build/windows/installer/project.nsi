; Fasten Desktop installer (per-user, no administrator rights needed).
; Build: makensis -DARG_BINARY=..\..\bin\fasten-desktop.exe project.nsi
Unicode true
!include "MUI2.nsh"

!ifndef ARG_BINARY
  !define ARG_BINARY "..\..\bin\fasten-desktop.exe"
!endif
!define PRODUCT "Fasten"
!define VERSION "0.1.0"
!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\FastenDesktop"

Name "${PRODUCT}"
OutFile "..\..\bin\fasten-desktop-${VERSION}-setup.exe"
InstallDir "$LOCALAPPDATA\Programs\Fasten"
RequestExecutionLevel user
SetCompressor /SOLID lzma

!define MUI_ICON "..\icon.ico"
!define MUI_UNICON "..\icon.ico"
!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "Install"
  SetOutPath "$INSTDIR"
  File "/oname=fasten-desktop.exe" "${ARG_BINARY}"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortcut "$SMPROGRAMS\Fasten.lnk" "$INSTDIR\fasten-desktop.exe"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayName" "${PRODUCT}"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTKEY}" "Publisher" "Fasten Health"
  WriteRegStr HKCU "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoRepair" 1
SectionEnd

; Uninstalling removes the program, never the records (%LOCALAPPDATA%\Fasten Desktop).
Section "Uninstall"
  Delete "$INSTDIR\fasten-desktop.exe"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\Fasten.lnk"
  DeleteRegValue HKCU "Software\Microsoft\Windows\CurrentVersion\Run" "Fasten"
  DeleteRegKey HKCU "${UNINSTKEY}"
SectionEnd
