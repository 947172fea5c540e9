; Fasten Desktop installer: per-user (no administrator rights), Start menu entry, uninstaller, and
; the WebView2 runtime when Windows does not have it yet.
;
; Built by build/dist.sh (`make dist`) with Debian's makensis:
;   makensis -DVERSION=<version> -DARG_BINARY=<path of the GUI exe> -DOUTFILE=<setup.exe> project.nsi
;
; WebView2: Windows 11 and current Windows 10 ship the Evergreen runtime. When neither the
; machine-wide nor the per-user registration is found, the installer downloads Microsoft's small
; Evergreen bootstrapper (MicrosoftEdgeWebview2Setup.exe) at install time and runs it silently;
; nothing of Microsoft's is bundled at build time. Without the runtime (offline install) the app
; still installs and Wails tells the user at start that WebView2 is needed.
Unicode true
Target amd64-unicode
!include "MUI2.nsh"
!include "LogicLib.nsh"
!include "WinVer.nsh"
!include "x64.nsh"

!ifndef VERSION
  !define VERSION "dev"
!endif
!ifndef FILE_VERSION
  !define FILE_VERSION "0.0.0.0"
!endif
!ifndef ARG_BINARY
  !error "pass -DARG_BINARY=<path of fasten-desktop.exe>"
!endif
!ifndef OUTFILE
  !define OUTFILE "fasten-desktop-${VERSION}-windows-amd64-setup.exe"
!endif

!define PRODUCT "Fasten"
!define EXE "fasten-desktop.exe"
!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\FastenDesktop"
; The WebView2 Evergreen runtime's client id and the bootstrapper's permanent link (Microsoft docs,
; "Distribute your app and the WebView2 Runtime", online-only deployment).
!define WEBVIEW2_CLIENT "{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"
!define WEBVIEW2_BOOTSTRAPPER_URL "https://go.microsoft.com/fwlink/p/?LinkId=2124703"

Name "${PRODUCT}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\Fasten"
InstallDirRegKey HKCU "${UNINSTKEY}" "InstallLocation"
RequestExecutionLevel user
SetCompressor /SOLID lzma
ManifestDPIAware true

; Version information: the setup file's Properties in Explorer and SmartScreen's publisher prompt.
VIProductVersion "${FILE_VERSION}"
VIFileVersion "${FILE_VERSION}"
VIAddVersionKey /LANG=0 "ProductName" "${PRODUCT}"
VIAddVersionKey /LANG=0 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=0 "FileVersion" "${FILE_VERSION}"
VIAddVersionKey /LANG=0 "FileDescription" "Fasten installer: your health records, on your own computer"
VIAddVersionKey /LANG=0 "LegalCopyright" "Copyright © Fasten Health"
VIAddVersionKey /LANG=0 "OriginalFilename" "fasten-desktop-setup.exe"
ShowInstDetails show

!define MUI_ICON "../icon.ico"
!define MUI_UNICON "../icon.ico"
!define MUI_FINISHPAGE_RUN "$INSTDIR\${EXE}"
!define MUI_FINISHPAGE_RUN_TEXT "Open Fasten"
!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Function .onInit
  ${IfNot} ${AtLeastWin10}
  ${OrIfNot} ${IsNativeAMD64}
    MessageBox MB_OK|MB_ICONSTOP "Fasten needs 64-bit Windows 10 or later."
    SetErrorLevel 64
    Quit
  ${EndIf}
  SetShellVarContext current
FunctionEnd

Function un.onInit
  SetShellVarContext current
FunctionEnd

; Installs the WebView2 runtime per user unless the machine or the user has it.
Function EnsureWebView2
  SetRegView 64
  ReadRegStr $0 HKLM "SOFTWARE\WOW6432Node\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_CLIENT}" "pv"
  ${If} $0 != ""
  ${AndIf} $0 != "0.0.0.0"
    Return
  ${EndIf}
  ReadRegStr $0 HKCU "Software\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_CLIENT}" "pv"
  ${If} $0 != ""
  ${AndIf} $0 != "0.0.0.0"
    Return
  ${EndIf}
  DetailPrint "Downloading the Microsoft Edge WebView2 runtime installer..."
  InitPluginsDir
  ; curl.exe ships with Windows 10 (1803) and later; PowerShell is the fallback.
  nsExec::ExecToLog '"$SYSDIR\curl.exe" --fail --silent --show-error --location --output "$PLUGINSDIR\MicrosoftEdgeWebview2Setup.exe" "${WEBVIEW2_BOOTSTRAPPER_URL}"'
  Pop $1
  ${If} $1 != 0
    nsExec::ExecToLog 'powershell.exe -NoProfile -NonInteractive -Command "[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12; Invoke-WebRequest -UseBasicParsing -Uri ''${WEBVIEW2_BOOTSTRAPPER_URL}'' -OutFile ''$PLUGINSDIR\MicrosoftEdgeWebview2Setup.exe''"'
    Pop $1
  ${EndIf}
  ${If} $1 != 0
    DetailPrint "Could not download the WebView2 runtime installer. Fasten needs it: install it from Microsoft, then open Fasten."
    Return
  ${EndIf}
  DetailPrint "Installing the Microsoft Edge WebView2 runtime..."
  ExecWait '"$PLUGINSDIR\MicrosoftEdgeWebview2Setup.exe" /silent /install' $1
  DetailPrint "WebView2 runtime installer finished (exit code $1)."
FunctionEnd

Section "Install"
  SetOutPath "$INSTDIR"
  File "/oname=${EXE}" "${ARG_BINARY}"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortcut "$SMPROGRAMS\Fasten.lnk" "$INSTDIR\${EXE}" "" "$INSTDIR\${EXE}" 0
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayName" "${PRODUCT}"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTKEY}" "DisplayIcon" "$INSTDIR\${EXE}"
  WriteRegStr HKCU "${UNINSTKEY}" "Publisher" "Fasten Health"
  WriteRegStr HKCU "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTKEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTKEY}" "NoRepair" 1
  Call EnsureWebView2
SectionEnd

; Uninstalling removes the program, its Start menu entry and its start-at-login entry, never the
; records (%LOCALAPPDATA%\Fasten Desktop) nor the sign-ins in Credential Manager.
Section "Uninstall"
  Delete "$INSTDIR\${EXE}"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\Fasten.lnk"
  DeleteRegValue HKCU "Software\Microsoft\Windows\CurrentVersion\Run" "Fasten"
  DeleteRegKey HKCU "${UNINSTKEY}"
SectionEnd
